package memory

import (
	"context"
	"fmt"
	"testing"

	"github.com/ordersystem/ordersystem/persistence"
)

// TestLogAcrossChunks reads a partition log of more than two chunks from
// every kind of place: within a chunk, across one or two chunk borders, up
// to and past the head.
func TestLogAcrossChunks(t *testing.T) {
	ctx := context.Background()
	b := NewPartitioned(1)
	const n = 2*chunkSize + 37
	for i := range n {
		id := fmt.Sprintf("s%d", i%5)
		v, _ := b.streamVersion(id)
		if _, err := b.Append(ctx, id, v, []persistence.Record{{Type: "t", Data: []byte{byte(i), byte(i >> 8)}}}); err != nil {
			t.Fatal(err)
		}
	}
	log := b.Log(0)
	if head, _ := log.Head(ctx); head != n {
		t.Fatalf("head %d, want %d", head, n)
	}
	for _, c := range []struct {
		after uint64
		limit int
	}{{0, 1}, {0, n + 5}, {5, 10}, {chunkSize - 1, 1}, {chunkSize - 1, 2}, {chunkSize, 3}, {chunkSize - 3, chunkSize + 6},
		{10, 2 * chunkSize}, {2 * chunkSize, 100}, {n - 1, 10}, {n, 10}, {n + 3, 1}, {7, 0}} {
		got, err := log.ReadAll(ctx, c.after, c.limit)
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		if c.after < n {
			want = min(c.limit, n-int(c.after))
		}
		if len(got) != want {
			t.Fatalf("ReadAll(%d, %d): %d records, want %d", c.after, c.limit, len(got), want)
		}
		for i, r := range got {
			pos := c.after + uint64(i) + 1
			if r.Position != pos || r.Data[0] != byte(pos-1) || r.Data[1] != byte((pos-1)>>8) {
				t.Fatalf("ReadAll(%d, %d)[%d] = position %d data %v, want position %d", c.after, c.limit, i, r.Position, r.Data, pos)
			}
		}
	}
	// Every stream still reads its own records, in order, across the chunks.
	for s := range 5 {
		recs, err := b.Load(ctx, fmt.Sprintf("s%d", s), 1)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range recs {
			if r.Version != uint64(i)+1 || r.Position != uint64(s+5*i)+1 {
				t.Fatalf("stream s%d record %d: version %d position %d", s, i, r.Version, r.Position)
			}
		}
	}
}

func (b *Backend) streamVersion(id string) (uint64, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	s, ok := b.streams.Get(id)
	return uint64(len(s)), ok
}
