package natsreg

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ordersystem/ordersystem/cluster/registry"
)

var _ registry.SecretKeeper = (*Registry)(nil)

// SecretBucket is the KV bucket that holds the cluster secrets of the
// members of bucket: a bucket of its own, because the membership bucket's
// records expire (by the bucket's MaxAge in ModeBucketTTL) and live in
// memory, while the secret must outlive both leases and server restarts.
func SecretBucket(bucket string) string { return bucket + "_secret" }

// ClusterSecret implements registry.SecretKeeper with kv.Create (a create
// if absent) of key <Cluster> in SecretBucket, file storage, no expiry;
// the first member's random secret stays, the others read it.
func (r *Registry) ClusterSecret(ctx context.Context) ([]byte, error) {
	// Each attempt has a deadline of its own: a JetStream API request can
	// go unanswered while the cluster elects a leader (the server that
	// took it forwarded it to the one that was killed), and without one a
	// single lost request waited out the caller's whole deadline (45 s in
	// TestClusterR3 with a server down). An attempt that timed out is made
	// again, and is answered once the new leader is there; any other error
	// is returned at once (a member then uses the secret it read before).
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, secretAttempt)
		secret, err := r.clusterSecretOnce(actx)
		cancel()
		if err == nil || !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			return secret, err
		}
		t := time.NewTimer(min(time.Duration(attempt)*100*time.Millisecond, time.Second))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
	}
}

// secretAttempt bounds one attempt of ClusterSecret.
const secretAttempt = 3 * time.Second

func (r *Registry) clusterSecretOnce(ctx context.Context) ([]byte, error) {
	kv, err := r.secretBucket(ctx)
	if err != nil {
		return nil, fmt.Errorf("nats cluster secret: bucket %s: %w", SecretBucket(r.bucket), err)
	}
	fresh, err := registry.NewSecret()
	if err != nil {
		return nil, err
	}
	// Two tries: the key may be deleted between the Create and the Get.
	for range 2 {
		_, err := kv.Create(ctx, r.cluster, fresh)
		if err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("nats cluster secret: %w", err)
		}
		e, err := kv.Get(ctx, r.cluster)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("nats cluster secret: %w", err)
		}
		if err := registry.CheckStoredSecret(e.Value()); err != nil {
			return nil, fmt.Errorf("nats cluster secret in %s/%s: %w", SecretBucket(r.bucket), r.cluster, err)
		}
		return e.Value(), nil
	}
	return nil, errors.New("nats cluster secret: the key was deleted twice while it was read")
}

// secretBucket binds SecretBucket, creating it if it does not exist.
func (r *Registry) secretBucket(ctx context.Context) (jetstream.KeyValue, error) {
	name := SecretBucket(r.bucket)
	kv, err := r.js.KeyValue(ctx, name)
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return kv, err
	}
	kv, err = r.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      name,
		Description: "OrderSystem cluster secrets (cluster/natsreg)",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    r.opts.Replicas, // as the members' bucket: the secret must outlive a server too
	})
	if errors.Is(err, jetstream.ErrBucketExists) {
		return r.js.KeyValue(ctx, name) // created meanwhile by another member
	}
	return kv, err
}
