package redisreg

import (
	"context"
	"errors"
	"fmt"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/ordersystem/ordersystem/cluster/registry"
)

var _ registry.SecretKeeper = (*Registry)(nil)

// secretKey holds the cluster secret: <Prefix>members:<Cluster>:secret,
// beside the member index, without an expiry.
func (r *Registry) secretKey() string { return strings.TrimSuffix(r.keyPrefix, ":") + ":secret" }

// ClusterSecret implements registry.SecretKeeper with SET NX (no expiry)
// and GET: the first member's random secret stays, the others read it.
func (r *Registry) ClusterSecret(ctx context.Context) ([]byte, error) {
	fresh, err := registry.NewSecret()
	if err != nil {
		return nil, err
	}
	// Two tries: the key may be deleted between the SET NX and the GET.
	for range 2 {
		if err := r.client.SetNX(ctx, r.secretKey(), fresh, 0).Err(); err != nil {
			return nil, fmt.Errorf("redis cluster secret: %w", err)
		}
		s, err := r.client.Get(ctx, r.secretKey()).Bytes()
		if errors.Is(err, goredis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("redis cluster secret: %w", err)
		}
		if err := registry.CheckStoredSecret(s); err != nil {
			return nil, fmt.Errorf("redis cluster secret at %s: %w", r.secretKey(), err)
		}
		return s, nil
	}
	return nil, errors.New("redis cluster secret: the key was deleted twice while it was read")
}
