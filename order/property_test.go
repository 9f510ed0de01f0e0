package order

import (
	"errors"
	"testing"
	"time"
	"unicode"

	"pgregory.net/rapid"
)

// modelTransitions is a tiny model of the state machine, written from
// DESIGN.md by name: status -> command -> next status. A command missing from
// a status's map is refused.
var modelTransitions = map[string]map[string]string{
	"None":    {"create": "Pending"},
	"Pending": {"pay": "Paid", "cancel": "Cancelled"},
	"Paid":    {"ship": "Shipped", "cancel": "Cancelled"},
	"Shipped": {"deliver": "Delivered"},
}

// modelEvents is the event each accepted command records.
var modelEvents = map[string]string{
	"create": "OrderCreated", "pay": "OrderPaid", "ship": "OrderShipped",
	"deliver": "OrderDelivered", "cancel": "OrderCancelled",
}

// textRune draws the characters a text field accepts: printable ones and the
// space (no control characters).
var textRune = rapid.RuneFrom([]rune{' '}, unicode.PrintRanges...)

// genString draws an accepted text of 1..maxRunes characters (0.. when
// minRunes is 0) and at most maxLen bytes.
func genString(t *rapid.T, label string, minRunes, maxRunes, maxLen int) string {
	return rapid.StringOfN(textRune, minRunes, maxRunes, maxLen).Draw(t, label)
}

func genItem() *rapid.Generator[Item] {
	return rapid.Custom(func(t *rapid.T) Item {
		return Item{
			ProductID: genString(t, "productId", 1, 12, MaxIDLength),
			Name:      genString(t, "name", 0, 12, MaxTextLength),
			Quantity:  rapid.Int32Range(1, MaxQuantity).Draw(t, "quantity"),
			UnitPrice: Cents(rapid.Int64Range(1, int64(MaxPrice)).Draw(t, "price")),
		}
	})
}

func genValidCreate(t *rapid.T) Create {
	return Create{
		CustomerID: genString(t, "customerId", 1, 16, MaxIDLength),
		Items:      rapid.SliceOfN(genItem(), 1, MaxItems).Draw(t, "items"),
	}
}

// genInvalidCreate breaks one rule of an otherwise valid create.
func genInvalidCreate(t *rapid.T) Create {
	c := genValidCreate(t)
	i := rapid.IntRange(0, len(c.Items)-1).Draw(t, "bad item")
	switch rapid.IntRange(0, 7).Draw(t, "broken rule") {
	case 0:
		c.CustomerID = ""
	case 1:
		c.Items = nil
	case 2:
		c.Items[i].Quantity = rapid.Int32Range(-1<<31, 0).Draw(t, "bad quantity")
	case 3:
		c.Items[i].Quantity = rapid.Int32Range(MaxQuantity+1, 1<<31-1).Draw(t, "bad quantity")
	case 4:
		c.Items[i].UnitPrice = Cents(rapid.Int64Range(-1<<63, 0).Draw(t, "bad price"))
	case 5:
		c.Items[i].UnitPrice = Cents(rapid.Int64Range(int64(MaxPrice)+1, 1<<63-1).Draw(t, "bad price"))
	case 6:
		c.Items[i].ProductID = rapid.SampledFrom([]string{"\xff", "p\x00", "p\n", "\x7f", "\u0085"}).Draw(t, "bad product id")
	default:
		for len(c.Items) <= MaxItems {
			c.Items = append(c.Items, c.Items[0])
		}
	}
	return c
}

func genText(t *rapid.T, label string) string {
	return genString(t, label, 0, 16, MaxTextLength)
}

// TestStateMachineAgreesWithModel runs random command sequences against both
// Decide/Evolve and the model, step by step.
func TestStateMachineAgreesWithModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := State{ID: "prop-order"}
		model := "None"
		var (
			version uint64
			total   int64
			now     = time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("model", 9*3600))
		)

		step := func(t *rapid.T, cmd Command, valid bool) {
			name := CommandName(cmd)
			now = now.Add(time.Duration(rapid.Int64Range(0, int64(48*time.Hour)).Draw(t, "elapsed")))
			events, err := Decide(s, cmd, now)
			next, allowed := modelTransitions[model][name]

			switch {
			case allowed && valid:
				if err != nil {
					t.Fatalf("%s from %s: %v, the model allows it", name, model, err)
				}
				if len(events) != 1 {
					t.Fatalf("%s produced %d events, want 1", name, len(events))
				}
				for _, e := range events {
					s = Evolve(s, e)
				}
				model = next
				version++
				if c, ok := cmd.(Create); ok {
					total = 0
					for _, it := range c.Items {
						total += int64(it.Quantity) * int64(it.UnitPrice)
					}
				}
				if want := modelEvents[name]; events[0].EventType() != want {
					t.Fatalf("%s produced %s, want %s", name, events[0].EventType(), want)
				}
			case allowed: // the model allows the transition but the input is bad
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("invalid %s from %s: %v, want ErrInvalid", name, model, err)
				}
			case model == "None":
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("%s on no order: %v, want ErrNotFound", name, err)
				}
			case name == "create":
				if !errors.Is(err, ErrAlreadyExists) {
					t.Fatalf("create on a %s order: %v, want ErrAlreadyExists", model, err)
				}
			default:
				var te *TransitionError
				if !errors.Is(err, ErrTransition) || !errors.As(err, &te) {
					t.Fatalf("%s from %s: %v, want ErrTransition", name, model, err)
				}
				if te.From.String() != model || te.Command != name || te.OrderID != "prop-order" {
					t.Fatalf("%s from %s: %+v", name, model, *te)
				}
			}
			if err != nil && events != nil {
				t.Fatalf("%s: events %v with error %v", name, events, err)
			}
		}

		t.Repeat(map[string]func(*rapid.T){
			"create":         func(t *rapid.T) { step(t, genValidCreate(t), true) },
			"invalid create": func(t *rapid.T) { step(t, genInvalidCreate(t), false) },
			"pay":            func(t *rapid.T) { step(t, Pay{PaymentMethod: genText(t, "paymentMethod")}, true) },
			"ship":           func(t *rapid.T) { step(t, Ship{TrackingNumber: genText(t, "trackingNumber")}, true) },
			"deliver":        func(t *rapid.T) { step(t, Deliver{}, true) },
			"cancel":         func(t *rapid.T) { step(t, Cancel{Reason: genText(t, "reason")}, true) },
			"": func(t *rapid.T) {
				if got := s.Status.String(); got != model {
					t.Fatalf("status %s, model %s", got, model)
				}
				if s.Version != version {
					t.Fatalf("version %d, model %d", s.Version, version)
				}
				if int64(s.Total) != total {
					t.Fatalf("total %d, model %d", int64(s.Total), total)
				}
				if s.Exists() != (model != "None") {
					t.Fatalf("Exists() = %v in %s", s.Exists(), model)
				}
				if _, ok := ParseStatus(model); !ok && model != "None" {
					t.Fatalf("model reached unknown status %s", model)
				}
			},
		})
	})
}

// TestReplayIsDeterministic checks that folding the recorded events of any
// accepted sequence again gives the same state.
func TestReplayIsDeterministic(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := State{ID: "replay"}
		var history []Event
		now := time.Date(2026, 5, 5, 5, 5, 5, 5, time.UTC)
		n := rapid.IntRange(1, 20).Draw(t, "steps")
		for range n {
			var cmd Command
			switch rapid.IntRange(0, 4).Draw(t, "command") {
			case 0:
				cmd = genValidCreate(t)
			case 1:
				cmd = Pay{PaymentMethod: genText(t, "paymentMethod")}
			case 2:
				cmd = Ship{TrackingNumber: genText(t, "trackingNumber")}
			case 3:
				cmd = Deliver{}
			default:
				cmd = Cancel{Reason: genText(t, "reason")}
			}
			now = now.Add(time.Second)
			events, err := Decide(s, cmd, now)
			if err != nil {
				continue
			}
			history = append(history, events...)
			for _, e := range events {
				s = Evolve(s, e)
			}
		}
		replayed := State{ID: "replay"}
		for _, e := range history {
			replayed = Evolve(replayed, e)
		}
		if replayed.Status != s.Status || replayed.Version != s.Version || replayed.Total != s.Total ||
			replayed.PaymentMethod != s.PaymentMethod || replayed.TrackingNumber != s.TrackingNumber ||
			replayed.CancelReason != s.CancelReason || !replayed.CreatedAt.Equal(s.CreatedAt) {
			t.Fatalf("replay %+v\n != live %+v", replayed, s)
		}
		if s.Version != uint64(len(history)) {
			t.Fatalf("version %d after %d events", s.Version, len(history))
		}
	})
}

// TestEventTimesNeverGoBackwards decides random command sequences with a
// clock that jumps back and forth by up to a day (members whose clocks
// disagree): every event is dated max(now, the previous event's time).
func TestEventTimesNeverGoBackwards(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := State{ID: "clock"}
		base := time.Date(2026, 5, 5, 5, 5, 5, 5, time.UTC)
		var last time.Time
		n := rapid.IntRange(1, 30).Draw(t, "steps")
		for range n {
			var cmd Command
			switch rapid.IntRange(0, 4).Draw(t, "command") {
			case 0:
				cmd = genValidCreate(t)
			case 1:
				cmd = Pay{}
			case 2:
				cmd = Ship{}
			case 3:
				cmd = Deliver{}
			default:
				cmd = Cancel{}
			}
			now := base.Add(time.Duration(rapid.Int64Range(-int64(24*time.Hour), int64(24*time.Hour)).Draw(t, "clock")))
			events, err := Decide(s, cmd, now)
			if err != nil {
				continue
			}
			for _, e := range events {
				at := eventAt(e)
				want := now
				if now.Before(last) {
					want = last
				}
				if at != want {
					t.Fatalf("%s decided at %v after an event of %v: dated %v, want %v", e.EventType(), now, last, at, want)
				}
				last = at
				s = Evolve(s, e)
			}
			if got := s.LastEventAt(); got != last {
				t.Fatalf("LastEventAt = %v, want %v", got, last)
			}
		}
	})
}
