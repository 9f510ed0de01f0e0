package persistence

import (
	"errors"
	"testing"
	"time"
)

// A manifest with a valid checksum but a chunk count or size no node
// writes (rewritten in the backend) is refused as corrupt, before any
// reader sizes anything by it.
func TestDecodeSnapshotManifestBounds(t *testing.T) {
	good := ReadModelSnapshot{Partition: 1, Partitions: 16, Position: 7, Generation: 3, Chunks: 2, Size: 10, Journal: "j", SavedAt: time.Unix(1, 0)}
	if _, err := DecodeSnapshotManifest(EncodeSnapshotManifest(good)); err != nil {
		t.Fatalf("a plain manifest: %v", err)
	}
	for name, s := range map[string]ReadModelSnapshot{
		"huge chunk count":      {Partition: 1, Partitions: 16, Chunks: 1 << 40, Size: 10},
		"chunk count past int":  {Partition: 1, Partitions: 16, Chunks: -1, Size: 10},
		"huge size":             {Partition: 1, Partitions: 16, Chunks: 1, Size: 1 << 50},
		"size past int (wraps)": {Partition: 1, Partitions: 16, Chunks: 1, Size: -5},
	} {
		if _, err := DecodeSnapshotManifest(EncodeSnapshotManifest(s)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}
