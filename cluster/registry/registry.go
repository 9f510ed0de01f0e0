package registry

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"
)

// Errors of membership registries.
var (
	// ErrLeaseLost means a member's record is gone from the registry (its
	// lease expired or it was deregistered) or holds another incarnation's
	// record. The member must not serve any more: it fences itself, and only
	// a new incarnation (a new actor system) may join again.
	ErrLeaseLost = errors.New("membership lease lost")
	// ErrMemberExists is returned by Registry.Register when a live record
	// with the same member id exists.
	ErrMemberExists = errors.New("member already registered")
	// ErrInvalidRecord means a MemberRecord cannot be stored (see
	// MemberRecord.Validate).
	ErrInvalidRecord = errors.New("invalid member record")
)

// Registry stores the membership records of one cluster, each under a
// lease that expires unless renewed. It is the small contract behind
// LeaseProvider; the in-memory (MemoryRegistry), Redis (cluster/redisreg)
// and NATS KV (cluster/natsreg) registries pass the same contract suite
// (cluster/registrytest).
//
// Implementations must be safe for concurrent use. Records are compared
// by their canonical encoding (MemberRecord.Encode): "ours" means the stored
// record is exactly rec.
type Registry interface {
	// Register stores rec with a lease of ttl. It fails with
	// ErrMemberExists if a live record with rec.MemberID exists, and with
	// ErrInvalidRecord if rec does not validate.
	Register(ctx context.Context, rec MemberRecord, ttl time.Duration) error
	// Renew extends the lease of rec to ttl from now. It fails with
	// ErrLeaseLost when the record is gone (expired, deregistered) or holds
	// a different record; it never re-creates a record.
	Renew(ctx context.Context, rec MemberRecord, ttl time.Duration) error
	// Deregister deletes the record of rec.MemberID if it is exactly rec.
	// It returns nil when there is nothing of ours to delete (gone, or
	// another record), so it is idempotent.
	Deregister(ctx context.Context, rec MemberRecord) error
	// List returns the records whose leases have not expired, sorted by
	// MemberID.
	List(ctx context.Context) ([]MemberRecord, error)
}

// MemberRecord is what a member publishes about itself in the registry.
type MemberRecord struct {
	// MemberID is the protoactor actor-system id: one incarnation of a
	// node. A restarted node has a new MemberID and the same NodeID.
	MemberID string `json:"memberId"`
	// NodeID is the operator's name of the node (--node-id).
	NodeID string `json:"nodeId"`
	// Host and Port are the advertised node-to-node gRPC address.
	Host string `json:"host"`
	Port int    `json:"port"`
	// Kinds are the actor kinds the member hosts.
	Kinds []string `json:"kinds"`
	// StartedAt is when the incarnation registered (UTC, milliseconds).
	StartedAt time.Time `json:"startedAt"`
}

// Address is the member's host:port.
func (r MemberRecord) Address() string {
	return net.JoinHostPort(r.Host, strconv.Itoa(r.Port))
}

// Validate reports whether the record can be stored: a member id made of
// ASCII letters, digits, '-', '_' or '=' (it becomes part of Redis keys and
// NATS KV keys), at most 128 bytes, and a host and port.
func (r MemberRecord) Validate() error {
	if err := ValidateKeyToken("member id", r.MemberID); err != nil {
		return err
	}
	if r.Host == "" {
		return fmt.Errorf("%w: member %s has no host", ErrInvalidRecord, r.MemberID)
	}
	if r.Port < 0 || r.Port > 65535 {
		return fmt.Errorf("%w: member %s has port %d", ErrInvalidRecord, r.MemberID, r.Port)
	}
	return nil
}

// ValidateKeyToken checks that s (named what in the error) is a non-empty
// token of ASCII letters, digits, '-', '_' or '=', at most 128 bytes: safe
// as one segment of a Redis key pattern or a NATS subject. Registries use it
// for member ids and cluster names.
func ValidateKeyToken(what, s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty %s", ErrInvalidRecord, what)
	}
	if len(s) > 128 {
		return fmt.Errorf("%w: %s %q is longer than 128 bytes", ErrInvalidRecord, what, s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '='
		if !ok {
			return fmt.Errorf("%w: %s %q has %q (allowed: letters, digits, '-', '_', '=')", ErrInvalidRecord, what, s, c)
		}
	}
	return nil
}

// Canonical returns r with sorted kinds and a UTC timestamp, so that the
// same record always encodes to the same bytes.
func (r MemberRecord) Canonical() MemberRecord {
	r.Kinds = slices.Clone(r.Kinds)
	slices.Sort(r.Kinds)
	if r.Kinds == nil {
		r.Kinds = []string{}
	}
	r.StartedAt = r.StartedAt.UTC()
	return r
}

// Encode returns the canonical JSON of the record: equal records encode to
// equal bytes, which is how registries recognize their own record.
func (r MemberRecord) Encode() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(r.Canonical())
	if err != nil {
		return nil, fmt.Errorf("encode member record %s: %w", r.MemberID, err)
	}
	return b, nil
}

// DecodeMemberRecord parses what Encode produced.
func DecodeMemberRecord(b []byte) (MemberRecord, error) {
	var r MemberRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return MemberRecord{}, fmt.Errorf("%w: %w", ErrInvalidRecord, err)
	}
	if err := r.Validate(); err != nil {
		return MemberRecord{}, err
	}
	return r.Canonical(), nil
}

// SortRecords sorts records by MemberID (the order List returns).
func SortRecords(recs []MemberRecord) {
	slices.SortFunc(recs, func(a, b MemberRecord) int { return cmp.Compare(a.MemberID, b.MemberID) })
}
