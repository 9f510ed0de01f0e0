package registry

import (
	"bytes"
	"context"
)

var _ SecretKeeper = (*MemoryRegistry)(nil)

// ClusterSecret implements SecretKeeper: the secret lives in process
// memory for as long as the registry does, so members of one process that
// share a registry share its secret.
func (m *MemoryRegistry) ClusterSecret(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.secret == nil {
		s, err := NewSecret()
		if err != nil {
			return nil, err
		}
		m.secret = s
	}
	return bytes.Clone(m.secret), nil
}
