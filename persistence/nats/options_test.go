package nats

import (
	"strings"
	"testing"

	natsgo "github.com/nats-io/nats.go"

	"github.com/ordersystem/ordersystem/internal/redact"
	"github.com/ordersystem/ordersystem/persistence"
)

func TestOptionsDefaultsAndURLs(t *testing.T) {
	for _, c := range []struct{ in, url, redacted string }{
		{"", DefaultURL, DefaultURL},
		{"127.0.0.1:4222", "nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://u:p@h:4222", "nats://u:p@h:4222", "nats://h:4222"},
		{"nats://tok3n@h:4222", "nats://tok3n@h:4222", "nats://h:4222"},
		{"nats://u:p@a:1, b:2", "nats://u:p@a:1,nats://b:2", "nats://a:1,nats://b:2"},
		{"tls://u:p@secure:4443", "tls://u:p@secure:4443", "tls://secure:4443"},
	} {
		o := Options{URL: c.in}
		o.setDefaults()
		if err := o.Validate(); err != nil {
			t.Fatalf("%q: %v", c.in, err)
		}
		if o.URL != c.url {
			t.Fatalf("%q: URL %q, want %q", c.in, o.URL, c.url)
		}
		if got := redact.URL(o.URL); got != c.redacted {
			t.Fatalf("%q: redacted %q, want %q", c.in, got, c.redacted)
		}
	}
	o := Options{}
	o.setDefaults()
	if o.Stream != DefaultStream || o.SubjectPrefix != DefaultSubjectPrefix || o.Replicas != 1 || o.Timeout != DefaultTimeout {
		t.Fatalf("defaults: %+v", o)
	}
	if o.checkpointBucket() != "ORDERS_JOURNAL_checkpoints" || o.snapshotBucket() != "ORDERS_JOURNAL_snapshots" {
		t.Fatalf("bucket names %s %s", o.checkpointBucket(), o.snapshotBucket())
	}
}

func TestOptionsRefused(t *testing.T) {
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{URL: "http://u:topsecret@h:1"}, "scheme"},
		{Options{Stream: "bad.name"}, "Stream"},
		{Options{Stream: "a b"}, "Stream"},
		{Options{SubjectPrefix: "orders.*"}, "SubjectPrefix"},
		{Options{SubjectPrefix: "orders.>"}, "SubjectPrefix"},
		{Options{SubjectPrefix: "orders..x"}, "SubjectPrefix"},
		{Options{SubjectPrefix: "$KV.x"}, "SubjectPrefix"},
		{Options{Replicas: 7}, "Replicas"},
	} {
		c.o.setDefaults()
		err := c.o.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%+v: %v, want an error about %s", c.o, err, c.want)
		}
		if strings.Contains(err.Error(), "topsecret") {
			t.Fatalf("error shows the password: %v", err)
		}
	}
}

func TestCodecRoundTrip(t *testing.T) {
	for _, rs := range [][]persistence.Record{
		{{Type: "One", Data: []byte{0, 1, 2}}},
		{{Type: "Empty"}},
		{{Type: "A", Data: []byte("a")}, {Type: "B"}, {Type: "C", Data: []byte{0xff, '\n'}}},
	} {
		m := encodeAppend("p.o", 7, rs)
		got, err := decodeMsg("o", 3, 5, m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(rs) {
			t.Fatalf("%d records, want %d", len(got), len(rs))
		}
		for i, r := range got {
			if r.StreamID != "o" || r.Partition != 3 || r.Version != 7+uint64(i) || r.Position != 5*positionScale+uint64(i) ||
				r.Type != rs[i].Type || string(r.Data) != string(rs[i].Data) {
				t.Fatalf("record %d: %+v", i, r)
			}
		}
	}
}

func TestCodecRefusesDamage(t *testing.T) {
	m := encodeAppend("p.o", 1, []persistence.Record{{Type: "A", Data: []byte("aa")}, {Type: "B", Data: []byte("bb")}})
	for name, c := range map[string]struct {
		h    natsgo.Header
		data []byte
	}{
		"truncated":     {m.Header, m.Data[:len(m.Data)-1]},
		"trailing":      {m.Header, append(append([]byte{}, m.Data...), 0)},
		"no version":    {natsgo.Header{hdrType: []string{"A"}}, nil},
		"zero version":  {natsgo.Header{hdrVersion: []string{"0"}, hdrType: []string{"A"}}, nil},
		"no type":       {natsgo.Header{hdrVersion: []string{"1"}}, nil},
		"bad count":     {natsgo.Header{hdrVersion: []string{"1"}, hdrCount: []string{"x"}}, nil},
		"huge count":    {natsgo.Header{hdrVersion: []string{"1"}, hdrCount: []string{"1001"}}, nil},
		"count too big": {natsgo.Header{hdrVersion: []string{"1"}, hdrCount: []string{"3"}}, m.Data},
	} {
		if _, err := decodeMsg("o", 0, 1, c.h, c.data); err == nil {
			t.Fatalf("%s: decoded without error", name)
		}
	}
}

func FuzzDecodeMsg(f *testing.F) {
	m := encodeAppend("p.o", 1, []persistence.Record{{Type: "A", Data: []byte("aa")}, {Type: "B"}})
	f.Add(m.Data, 2)
	f.Fuzz(func(t *testing.T, data []byte, count int) {
		h := natsgo.Header{hdrVersion: []string{"1"}, hdrCount: []string{string(rune('0' + count%10))}}
		_, _ = decodeMsg("o", 0, 1, h, data)
	})
}

func TestKVKey(t *testing.T) {
	seen := map[string]string{}
	for _, s := range []string{"abc", "A-b_9", "a.b", "=YQ", "a b", "ü", "*", ">", ""} {
		k := kvKey(s)
		if prev, dup := seen[k]; dup {
			t.Fatalf("%q and %q map to the same key %q", prev, s, k)
		}
		seen[k] = s
		for _, r := range k {
			if !strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=", r) {
				t.Fatalf("kvKey(%q) = %q holds %q", s, k, r)
			}
		}
	}
}

func TestStreamCache(t *testing.T) {
	c := newStreamCache(2, 100)
	c.putHead("a", head{1, 10})
	c.putHead("b", head{1, 11})
	c.putHead("a", head{0, 5}) // older: ignored
	if h, _ := c.head("a"); h.seq != 10 {
		t.Fatalf("older head replaced a newer one: %+v", h)
	}
	c.putHead("c", head{1, 12}) // evicts b, the least recently used
	if _, ok := c.head("b"); ok {
		t.Fatal("b not evicted")
	}
	if _, ok := c.head("a"); !ok {
		t.Fatal("a evicted")
	}

	// Records: a prefix grows with appends made on top of it only.
	c = newStreamCache(10, 5)
	data := []byte("x")
	c.appended("s", 0, 0, 0, 3, []persistence.Record{{Type: "A", Data: data}, {Type: "B"}})
	data[0] = 'y' // the caller's buffer is copied
	recs, seq := c.prefix("s")
	if len(recs) != 2 || seq != 3 || recs[1].Version != 2 || recs[0].Position != 3000 || string(recs[0].Data) != "x" {
		t.Fatalf("prefix after a first append: %+v seq %d", recs, seq)
	}
	c.appended("s", 0, 5, 9, 12, []persistence.Record{{Type: "Z"}}) // not on top of the prefix
	if recs, seq = c.prefix("s"); len(recs) != 2 || seq != 3 {
		t.Fatalf("prefix extended by an append it does not end at: %d records, seq %d", len(recs), seq)
	}
	if h, _ := c.head("s"); h.version != 6 || h.seq != 12 {
		t.Fatalf("head %+v, want version 6 seq 12", h)
	}
	c.appended("s", 0, 2, 3, 4, []persistence.Record{{Type: "C"}})
	if recs, seq = c.prefix("s"); len(recs) != 3 || seq != 4 {
		t.Fatalf("prefix after an append on top: %d records, seq %d", len(recs), seq)
	}
	// The record bound evicts whole orders, least recently used first.
	c.loaded("t", []persistence.Record{{Version: 1}, {Version: 2}, {Version: 3}}, 20)
	if recs, _ = c.prefix("s"); recs != nil {
		t.Fatalf("records over the bound were kept: s has %d", len(recs))
	}
	if recs, _ = c.prefix("t"); len(recs) != 3 {
		t.Fatalf("t has %d records, want 3", len(recs))
	}
	// A head below the cached prefix means the stream was recreated.
	c.putHead("t", head{1, 2})
	if recs, _ = c.prefix("t"); recs != nil {
		t.Fatal("prefix kept after the stream went back")
	}

	off := newStreamCache(-1, 100)
	off.putHead("a", head{1, 1})
	off.appended("a", 0, 0, 0, 1, []persistence.Record{{Type: "A"}})
	if _, ok := off.head("a"); ok {
		t.Fatal("disabled cache remembered")
	}
}
