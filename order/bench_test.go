package order

import (
	"testing"
	"time"
)

var (
	sinkEvents []Event
	sinkState  State
)

// BenchmarkDecideCreate: validation, total and the Created event.
func BenchmarkDecideCreate(b *testing.B) {
	c, now := seedCreate(), time.Now()
	b.ReportAllocs()
	for b.Loop() {
		evs, err := Decide(State{ID: "o"}, c, now)
		if err != nil {
			b.Fatal(err)
		}
		sinkEvents = evs
	}
}

// BenchmarkDecidePay: a transition on an existing order.
func BenchmarkDecidePay(b *testing.B) {
	now := time.Now()
	s := Evolve(State{ID: "o"}, Created{CustomerID: "c", Total: 1, At: now})
	b.ReportAllocs()
	for b.Loop() {
		evs, err := Decide(s, Pay{PaymentMethod: "card"}, now)
		if err != nil {
			b.Fatal(err)
		}
		sinkEvents = evs
	}
}

// BenchmarkDecideRefused: a refused transition (the 409 path).
func BenchmarkDecideRefused(b *testing.B) {
	now := time.Now()
	s := Evolve(State{ID: "o"}, Created{CustomerID: "c", Total: 1, At: now})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decide(s, Deliver{}, now); err == nil {
			b.Fatal("deliver of a pending order was accepted")
		}
	}
}

// BenchmarkEvolveLifecycle: folding created, paid, shipped, delivered.
func BenchmarkEvolveLifecycle(b *testing.B) {
	now := time.Now()
	evs := []Event{
		Created{CustomerID: "c", Items: seedCreate().Items, Total: 105997, At: now},
		Paid{PaymentMethod: "card", At: now},
		Shipped{TrackingNumber: "T1", At: now},
		Delivered{At: now},
	}
	b.ReportAllocs()
	for b.Loop() {
		s := State{ID: "o"}
		for _, e := range evs {
			s = Evolve(s, e)
		}
		sinkState = s
	}
}

// BenchmarkParseCentsWorstPrice: the most expensive amounts a client can
// send (an exponent math/big accepts, up to 1e6). Before maxExponent each
// cost tens of milliseconds; now they are refused before big.Rat.
func BenchmarkParseCentsWorstPrice(b *testing.B) {
	for _, s := range []string{"1e999999", "1e1000000", "1e-999999", "9.99999999999999999999e999999", "1e64", "999.99"} {
		b.Run(s, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = ParseCents(s)
			}
		})
	}
}
