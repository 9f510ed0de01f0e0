package order

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

// MaxOrderIDLength is the longest order id accepted.
const MaxOrderIDLength = 64

// ValidID reports whether id is a valid order id: 1 to MaxOrderIDLength letters,
// digits, '-' or '_' (the regexp ^[A-Za-z0-9_-]{1,64}$, checked without one
// because it runs on every request). Such an id is also safe as a Redis key
// part and a NATS subject token.
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > MaxOrderIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// IDForKey is the id of the order that a create with the idempotency key
// key makes (POST /orders with the header Idempotency-Key: key), so a client
// may compute it before the answer and a retried create reaches the same
// order.
func IDForKey(key string) string {
	sum := sha256.Sum256([]byte("ordersystem/create/" + key))
	return hex.EncodeToString(sum[:8])
}

// EventID is the id of an order's event that every consumer deduplicates
// by: "<orderId>:<version>".
func EventID(orderID string, version uint64) string {
	return orderID + ":" + strconv.FormatUint(version, 10)
}
