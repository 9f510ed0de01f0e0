package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
)

// ErrInvalidSecret means a stored cluster secret cannot be used (empty,
// too short or not what NewSecret makes): someone wrote the backend by
// hand. A member refuses to start on it rather than guess.
var ErrInvalidSecret = errors.New("invalid cluster secret in the registry")

// SecretKeeper is the optional ability of a registry to keep one secret
// for its cluster: the node-to-node authentication key the members agree
// on without an operator handing one out. Whoever can read the registry's
// backend can read the secret, as they can read every order there.
//
// The in-memory, Redis and NATS registries have it; the --peers registry
// has not (it shares nothing), so --peers needs an explicit secret.
// Implementations must be safe for concurrent use.
type SecretKeeper interface {
	// ClusterSecret returns the cluster's secret, storing a new random one
	// (NewSecret) if none is stored. Concurrent first calls of several
	// members agree: exactly one value is stored (a create-if-absent), and
	// every caller gets that value. The secret never expires by itself.
	ClusterSecret(ctx context.Context) ([]byte, error)
}

// SecretBytes is the length of the random part of a secret NewSecret makes.
const SecretBytes = 32

// NewSecret returns a new random cluster secret: 32 random bytes, hex
// encoded (64 ASCII characters, so it can be stored and shown as text).
func NewSecret() ([]byte, error) {
	b := make([]byte, SecretBytes)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("new cluster secret: %w", err)
	}
	return []byte(hex.EncodeToString(b)), nil
}

// CheckStoredSecret validates a secret read back from a backend: at least
// 16 bytes, without control characters. It never quotes the secret.
func CheckStoredSecret(s []byte) error {
	if len(s) < 16 {
		return fmt.Errorf("%w: %d bytes, want at least 16", ErrInvalidSecret, len(s))
	}
	for _, c := range s {
		if c < ' ' || c == 0x7f {
			return fmt.Errorf("%w: it holds control characters", ErrInvalidSecret)
		}
	}
	return nil
}
