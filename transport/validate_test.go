package transport_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ordersystem/ordersystem/transport"
)

func TestValidateBatch(t *testing.T) {
	ok := transport.Message{OrderID: "0b6e4c1e-8f7a", Version: 1, Type: "OrderCreated"}
	for _, c := range []struct {
		name string
		edit func(m *transport.Message)
		good bool
	}{
		{"valid", func(m *transport.Message) {}, true},
		{"order id with a colon", func(m *transport.Message) { m.OrderID = "a:b" }, true},
		{"unicode order id", func(m *transport.Message) { m.OrderID = "commande-é" }, true},
		{"empty order id", func(m *transport.Message) { m.OrderID = "" }, false},
		{"long order id", func(m *transport.Message) { m.OrderID = strings.Repeat("x", transport.MaxOrderIDLen+1) }, false},
		{"order id with a tab", func(m *transport.Message) { m.OrderID = "a\tb" }, false},
		{"order id not UTF-8", func(m *transport.Message) { m.OrderID = "a\xffb" }, false},
		{"version 0", func(m *transport.Message) { m.Version = 0 }, false},
		{"empty type", func(m *transport.Message) { m.Type = "" }, false},
		{"type with a dot", func(m *transport.Message) { m.Type = "Order.Paid" }, false},
		{"type with >", func(m *transport.Message) { m.Type = ">" }, false},
		{"long type", func(m *transport.Message) { m.Type = strings.Repeat("T", transport.MaxTokenLen+1) }, false},
	} {
		m := ok
		c.edit(&m)
		err := transport.ValidateBatch([]transport.Message{ok, m})
		if c.good && err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
		if !c.good && !errors.Is(err, transport.ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", c.name, err)
		}
		if !c.good && err != nil && !strings.Contains(err.Error(), "message 1") {
			t.Errorf("%s: error %q does not name the message", c.name, err)
		}
	}
	if err := transport.ValidateBatch(nil); err != nil {
		t.Errorf("empty batch: %v", err)
	}
}

func TestValidateGroup(t *testing.T) {
	for _, g := range []string{"", "projection", "read-model_2"} {
		if err := transport.ValidateGroup(g); err != nil {
			t.Errorf("%q: %v", g, err)
		}
	}
	for _, g := range []string{"a.b", "a b", "*", ">", "x/y", strings.Repeat("g", transport.MaxTokenLen+1)} {
		if err := transport.ValidateGroup(g); !errors.Is(err, transport.ErrInvalidArgument) {
			t.Errorf("%q: %v, want ErrInvalidArgument", g, err)
		}
	}
}

func TestUnavailable(t *testing.T) {
	cause := errors.New("connection refused")
	err := transport.Unavailable("redis publish", cause)
	if !errors.Is(err, transport.ErrUnavailable) || !errors.Is(err, cause) {
		t.Fatalf("%v does not wrap both", err)
	}
}
