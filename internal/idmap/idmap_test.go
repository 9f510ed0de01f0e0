package idmap

import (
	"hash/maphash"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

type entry struct {
	id string
	n  int
}

func isEntry(e *entry, id string) bool { return e.id == id }

// Any sequence of sets and deletes leaves a Map holding what a
// map[string]*entry holds, also when most ids share a hash (the hash here
// keeps 2 bits, so the ids collide all the time).
func TestMapIsAStringMap(t *testing.T) {
	for _, bits := range []uint{2, 64} {
		rapid.Check(t, func(t *rapid.T) {
			m := New(isEntry)
			if bits < 64 {
				m.hash = func(s maphash.Seed, id string) uint64 { return maphash.String(s, id) & (1<<bits - 1) }
			}
			want := map[string]*entry{}
			ids := rapid.SliceOfNDistinct(rapid.StringN(0, 4, 4), 1, 12, rapid.ID[string]).Draw(t, "ids")
			for i, n := 0, rapid.IntRange(0, 200).Draw(t, "ops"); i < n; i++ {
				id := rapid.SampledFrom(ids).Draw(t, "id")
				switch rapid.IntRange(0, 2).Draw(t, "op") {
				case 0, 1:
					e := &entry{id: id, n: i}
					m.Set(id, e)
					want[id] = e
				case 2:
					m.Delete(id)
					delete(want, id)
				}
				for _, id := range ids {
					got, ok := m.Get(id)
					w, wok := want[id]
					if got != w || ok != wok {
						t.Fatalf("Get(%q) = %v, %v; want %v, %v", id, got, ok, w, wok)
					}
				}
				if m.Len() != len(want) {
					t.Fatalf("Len() = %d, want %d", m.Len(), len(want))
				}
			}
			var got []string
			for e := range m.All() {
				got = append(got, e.id)
			}
			var wantIDs []string
			for id := range want {
				wantIDs = append(wantIDs, id)
			}
			slices.Sort(got)
			slices.Sort(wantIDs)
			if !slices.Equal(got, wantIDs) {
				t.Fatalf("All() = %v, want %v", got, wantIDs)
			}
		})
	}
}

func TestAllStops(t *testing.T) {
	m := New(isEntry)
	m.hash = func(maphash.Seed, string) uint64 { return 1 } // all but one in more
	for _, id := range []string{"a", "b", "c", "d"} {
		m.Set(id, &entry{id: id})
	}
	n := 0
	for range m.All() {
		n++
		if n == 2 {
			break
		}
	}
	if n != 2 {
		t.Fatalf("the loop ran %d times after a break at 2", n)
	}
}
