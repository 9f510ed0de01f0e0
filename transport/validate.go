package transport

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// ErrInvalidArgument means the call itself was malformed: a message without
// an order id, a version or a type that can be a subject token, or a group
// name that is not a plain token. Nothing was published or subscribed.
var ErrInvalidArgument = errors.New("invalid argument")

// Limits on the identifiers that travel in subjects, headers, stream fields
// and consumer names.
const (
	// MaxOrderIDLen is the longest order id a message may carry, in bytes.
	MaxOrderIDLen = 256
	// MaxTokenLen is the longest event type or group name, in bytes.
	MaxTokenLen = 128
)

// Unavailable wraps err so that errors.Is(err, ErrUnavailable) holds while the
// cause stays visible in the message and to errors.As.
func Unavailable(op string, err error) error {
	return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
}

// ValidateBatch checks every message of a batch before it is published: an
// order id of printable non-space characters (at most MaxOrderIDLen bytes), a
// version of at least 1 and a Type made of letters, digits, '_' and '-' (it
// becomes the last token of a NATS subject). Errors match ErrInvalidArgument
// and name the offending message.
func ValidateBatch(batch []Message) error {
	for i, m := range batch {
		if err := validateMessage(m); err != nil {
			return fmt.Errorf("message %d (%q): %w", i, m.ID(), err)
		}
	}
	return nil
}

func validateMessage(m Message) error {
	switch {
	case m.OrderID == "":
		return fmt.Errorf("empty order id: %w", ErrInvalidArgument)
	case len(m.OrderID) > MaxOrderIDLen:
		return fmt.Errorf("order id of %d bytes, at most %d: %w", len(m.OrderID), MaxOrderIDLen, ErrInvalidArgument)
	case !utf8.ValidString(m.OrderID):
		return fmt.Errorf("order id is not UTF-8: %w", ErrInvalidArgument)
	case m.Version == 0:
		return fmt.Errorf("version 0 (versions start at 1): %w", ErrInvalidArgument)
	}
	for _, r := range m.OrderID {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return fmt.Errorf("order id contains %q (spaces and control characters are not allowed): %w", r, ErrInvalidArgument)
		}
	}
	if err := validToken(m.Type); err != nil {
		return fmt.Errorf("type %q: %w", m.Type, err)
	}
	return nil
}

// ValidateGroup checks a SubscribeOptions.Group: empty (an ephemeral
// subscription) or letters, digits, '_' and '-', at most MaxTokenLen bytes, so
// that it is a valid Redis consumer group and NATS durable consumer name.
func ValidateGroup(group string) error {
	if group == "" {
		return nil
	}
	if err := validToken(group); err != nil {
		return fmt.Errorf("group %q: %w", group, err)
	}
	return nil
}

func validToken(s string) error {
	if s == "" {
		return fmt.Errorf("empty: %w", ErrInvalidArgument)
	}
	if len(s) > MaxTokenLen {
		return fmt.Errorf("%d bytes, at most %d: %w", len(s), MaxTokenLen, ErrInvalidArgument)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return fmt.Errorf("contains %q (only letters, digits, '_' and '-' are allowed): %w", r, ErrInvalidArgument)
		}
	}
	return nil
}
