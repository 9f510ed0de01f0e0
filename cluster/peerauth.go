package cluster

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
)

// Node-to-node authentication.
//
// Every gRPC call between members (the stream protoactor's endpoint writer
// opens to a peer, and any unary call) carries one header,
//
//	x-ordersystem-peer-auth: v1.<unix ms>.<nonce>.<mac>
//
// where nonce is 16 random bytes and mac is HMAC-SHA256 under a key derived
// from the cluster secret and the cluster name, over the timestamp, the
// nonce, the :authority the call is addressed to and the gRPC service. The
// server refuses the call (codes.Unauthenticated) before protoactor sees it
// unless the MAC is right, the timestamp is within authWindow of its clock,
// the authority is its own advertised address and the nonce is new.
//
// So the secret never travels: an eavesdropper on a plaintext link sees
// single-use tokens bound to one member's address, which it can neither
// replay to that member (the nonce was seen) nor to another (another
// authority) nor turn into the secret. An active man in the middle of a
// plaintext link can still take over a stream it relays; against that,
// add --tls-ca (mutual TLS), which this header then complements.
// Members' clocks must agree within authWindow (NTP).

// authHeader is the metadata key of the token.
const authHeader = "x-ordersystem-peer-auth"

// authWindow is how far a token's timestamp may be from the server's clock.
const authWindow = 2 * time.Minute

// maxNonces bounds the nonces a member remembers (only those of calls that
// authenticated: a stranger cannot fill it). Members open one stream per
// peer, and a new one when a connection breaks, so this is far above need.
const maxNonces = 1 << 16

// Errors of node-to-node authentication (the server logs them; the client
// only ever sees codes.Unauthenticated).
var (
	errNoToken      = errors.New("no node-to-node token (the caller has no cluster secret)")
	errBadToken     = errors.New("malformed node-to-node token")
	errBadMAC       = errors.New("node-to-node token does not verify (another cluster secret or cluster name)")
	errStale        = errors.New("node-to-node token timestamp outside the accepted window (clocks disagree?)")
	errAuthority    = errors.New("node-to-node token is for another member's address")
	errReplay       = errors.New("node-to-node token replayed")
	errNoncesFull   = errors.New("too many node-to-node tokens within the window")
	errSecretLength = errors.New("cluster secret shorter than 16 bytes")
)

// peerAuth mints and checks node-to-node tokens for one cluster secret.
// Safe for concurrent use.
type peerAuth struct {
	key []byte
	now func() time.Time

	mu   sync.Mutex
	seen map[string]time.Time // nonce -> when it may be forgotten
}

// newPeerAuth derives the token key from secret and the cluster name, so
// that two clusters that happen to share a secret cannot talk either.
func newPeerAuth(secret []byte, clusterName string) (*peerAuth, error) {
	if len(secret) < 16 {
		return nil, errSecretLength
	}
	return &peerAuth{key: deriveKey(secret, "node-to-node/v1\x00"+clusterName), now: time.Now, seen: map[string]time.Time{}}, nil
}

func deriveKey(secret []byte, purpose string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("ordersystem\x00" + purpose))
	return m.Sum(nil)
}

// DeriveSecret returns a hex key for another use of the cluster secret
// (named by purpose), from which the secret cannot be recovered: the
// --peers membership port authenticates with one, so that what travels
// there in a header never reveals the node-to-node secret.
func DeriveSecret(secret []byte, purpose string) string {
	return hex.EncodeToString(deriveKey(secret, purpose))
}

func (a *peerAuth) mac(ts, nonce, authority, service string) []byte {
	m := hmac.New(sha256.New, a.key)
	for _, s := range []string{"v1", ts, nonce, normalizeAuthority(authority), service} {
		m.Write([]byte(s))
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}

// normalizeAuthority makes the client's and the server's view of an
// authority comparable: grpc drops a default :443 from the audience.
func normalizeAuthority(a string) string {
	return strings.ToLower(strings.TrimSuffix(a, ":443"))
}

// token returns a fresh token for a call to authority's service.
func (a *peerAuth) token(authority, service string) (string, error) {
	var nb [16]byte
	if _, err := rand.Read(nb[:]); err != nil {
		return "", err
	}
	ts := strconv.FormatInt(a.now().UnixMilli(), 10)
	nonce := base64.RawURLEncoding.EncodeToString(nb[:])
	mac := base64.RawURLEncoding.EncodeToString(a.mac(ts, nonce, authority, service))
	return "v1." + ts + "." + nonce + "." + mac, nil
}

// verify checks the token of an incoming call addressed to authority,
// fullMethod, where self is this member's advertised address.
func (a *peerAuth) verify(ctx context.Context, fullMethod, self string) error {
	md, _ := metadata.FromIncomingContext(ctx)
	toks := md.Get(authHeader)
	if len(toks) == 0 {
		return errNoToken
	}
	if len(toks) != 1 {
		return errBadToken
	}
	parts := strings.Split(toks[0], ".")
	if len(parts) != 4 || parts[0] != "v1" || len(parts[1]) > 20 || len(parts[2]) != 22 || len(parts[3]) != 43 {
		return errBadToken
	}
	ts, nonce := parts[1], parts[2]
	mac, err := base64.RawURLEncoding.DecodeString(parts[3])
	if err != nil {
		return errBadToken
	}
	authority := ""
	if as := md.Get(":authority"); len(as) == 1 {
		authority = as[0]
	}
	service := fullMethod
	if i := strings.LastIndex(fullMethod, "/"); i > 0 {
		service = fullMethod[:i]
	}
	if !hmac.Equal(mac, a.mac(ts, nonce, authority, service)) {
		return errBadMAC
	}
	// The MAC is right: the caller holds the secret. The rest tells a
	// replay from a fresh call.
	ms, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errBadToken
	}
	now := a.now()
	at := time.UnixMilli(ms)
	if at.Before(now.Add(-authWindow)) || at.After(now.Add(authWindow)) {
		return fmt.Errorf("%w: %v off", errStale, now.Sub(at).Round(time.Second))
	}
	if normalizeAuthority(authority) != normalizeAuthority(self) {
		return fmt.Errorf("%w: %q, this member is %q", errAuthority, authority, self)
	}
	return a.remember(nonce, at.Add(authWindow), now)
}

// remember records a nonce until forget, failing if it was seen.
func (a *peerAuth) remember(nonce string, forget, now time.Time) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.seen[nonce]; ok {
		return errReplay
	}
	if len(a.seen) >= maxNonces/2 {
		for n, t := range a.seen {
			if now.After(t) {
				delete(a.seen, n)
			}
		}
		if len(a.seen) >= maxNonces {
			return errNoncesFull
		}
	}
	a.seen[nonce] = forget
	return nil
}

// PeerCredentials returns the gRPC per-call credentials with which a member
// of clusterName that holds secret authenticates to the others (see the
// package's node-to-node authentication). The cluster uses them itself;
// tools and tests that speak to a member's node-to-node port need them.
// They work over plaintext and TLS alike (RequireTransportSecurity is
// false: the token is a single-use MAC, not the secret).
func PeerCredentials(secret []byte, clusterName string) (credentials.PerRPCCredentials, error) {
	a, err := newPeerAuth(secret, clusterName)
	if err != nil {
		return nil, err
	}
	return peerCreds{a}, nil
}

type peerCreds struct{ a *peerAuth }

// GetRequestMetadata implements credentials.PerRPCCredentials; uri is
// grpc's audience, https://<authority>/<service>.
func (c peerCreds) GetRequestMetadata(_ context.Context, uri ...string) (map[string]string, error) {
	if len(uri) == 0 {
		return nil, errors.New("node-to-node credentials: no audience")
	}
	u, err := url.Parse(uri[0])
	if err != nil {
		return nil, fmt.Errorf("node-to-node credentials: audience %q: %w", uri[0], err)
	}
	tok, err := c.a.token(u.Host, u.Path)
	if err != nil {
		return nil, err
	}
	return map[string]string{authHeader: tok}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (peerCreds) RequireTransportSecurity() bool { return false }
