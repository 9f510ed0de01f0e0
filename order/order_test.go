package order

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

const testOrderID = "order-1"

// now is deliberately not in UTC: every event must carry it in UTC.
var (
	testNow    = time.Date(2025, 3, 4, 5, 6, 7, 8, time.FixedZone("UTC+2", 2*3600))
	testNowUTC = time.Date(2025, 3, 4, 3, 6, 7, 8, time.UTC)
)

// seedCreate is the order of the original README: 1 x 999.99 + 2 x 29.99.
func seedCreate() Create {
	return Create{
		CustomerID: "customer-42",
		Items: []Item{
			{ProductID: "laptop", Name: "Laptop", Quantity: 1, UnitPrice: 99999},
			{ProductID: "mouse", Name: "Mouse", Quantity: 2, UnitPrice: 2999},
		},
	}
}

// lifecycleCommands lists the legal path from "no order" to each status.
func lifecycleCommands(s Status) []Command {
	switch s {
	case StatusNone:
		return nil
	case StatusPending:
		return []Command{seedCreate()}
	case StatusPaid:
		return []Command{seedCreate(), Pay{PaymentMethod: "card"}}
	case StatusShipped:
		return []Command{seedCreate(), Pay{PaymentMethod: "card"}, Ship{TrackingNumber: "TRK-1"}}
	case StatusDelivered:
		return []Command{seedCreate(), Pay{PaymentMethod: "card"}, Ship{TrackingNumber: "TRK-1"}, Deliver{}}
	case StatusCancelled:
		return []Command{seedCreate(), Cancel{Reason: "changed my mind"}}
	}
	panic(fmt.Sprintf("no lifecycle for %v", s))
}

// stateIn builds an order in status s by deciding and folding the legal
// commands that lead there, an hour apart and before testNow (so that a
// command decided at testNow is dated testNow).
func stateIn(t *testing.T, s Status) State {
	t.Helper()
	st := State{ID: testOrderID}
	cmds := lifecycleCommands(s)
	for i, cmd := range cmds {
		events, err := Decide(st, cmd, testNow.Add(time.Duration(i-len(cmds))*time.Hour))
		if err != nil {
			t.Fatalf("building a %v order: %s: %v", s, CommandName(cmd), err)
		}
		for _, e := range events {
			st = Evolve(st, e)
		}
	}
	if st.Status != s {
		t.Fatalf("building a %v order ended in %v", s, st.Status)
	}
	return st
}

// cloneState copies s deeply enough to detect mutation of its items.
func cloneState(s State) State {
	s.Items = slices.Clone(s.Items)
	return s
}

var allSentinels = []error{ErrInvalid, ErrNotFound, ErrAlreadyExists, ErrTransition}

// wantOnly checks that err matches want and none of the other sentinels.
func wantOnly(t *testing.T, err, want error) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want %v", want)
	}
	for _, s := range allSentinels {
		if got := errors.Is(err, s); got != (s == want) {
			t.Errorf("errors.Is(%v, %v) = %v, want %v", err, s, got, s == want)
		}
	}
}

func TestDecideEveryCommandInEveryStatus(t *testing.T) {
	type outcome struct {
		events []Event // on success
		err    error   // sentinel on failure
	}
	ok := func(e Event) outcome { return outcome{events: []Event{e}} }
	fail := func(err error) outcome { return outcome{err: err} }

	seed := seedCreate()
	created := Created{CustomerID: seed.CustomerID, Items: seed.Items, Total: 105997, At: testNowUTC}
	paid := Paid{PaymentMethod: "visa", At: testNowUTC}
	shipped := Shipped{TrackingNumber: "1Z999", At: testNowUTC}
	delivered := Delivered{At: testNowUTC}
	cancelled := Cancelled{Reason: "too slow", At: testNowUTC}

	commands := []Command{seed, Pay{PaymentMethod: "visa"}, Ship{TrackingNumber: "1Z999"}, Deliver{}, Cancel{Reason: "too slow"}}
	want := map[Status][]outcome{ // in the order of commands
		StatusNone:      {ok(created), fail(ErrNotFound), fail(ErrNotFound), fail(ErrNotFound), fail(ErrNotFound)},
		StatusPending:   {fail(ErrAlreadyExists), ok(paid), fail(ErrTransition), fail(ErrTransition), ok(cancelled)},
		StatusPaid:      {fail(ErrAlreadyExists), fail(ErrTransition), ok(shipped), fail(ErrTransition), ok(cancelled)},
		StatusShipped:   {fail(ErrAlreadyExists), fail(ErrTransition), fail(ErrTransition), ok(delivered), fail(ErrTransition)},
		StatusDelivered: {fail(ErrAlreadyExists), fail(ErrTransition), fail(ErrTransition), fail(ErrTransition), fail(ErrTransition)},
		StatusCancelled: {fail(ErrAlreadyExists), fail(ErrTransition), fail(ErrTransition), fail(ErrTransition), fail(ErrTransition)},
	}
	statuses := []Status{StatusNone, StatusPending, StatusPaid, StatusShipped, StatusDelivered, StatusCancelled}
	if len(want) != len(statuses) {
		t.Fatalf("table covers %d statuses, want %d", len(want), len(statuses))
	}

	cases := 0
	for _, from := range statuses {
		for i, cmd := range commands {
			w := want[from][i]
			cases++
			t.Run(fmt.Sprintf("%v/%s", from, CommandName(cmd)), func(t *testing.T) {
				s := stateIn(t, from)
				before := cloneState(s)
				events, err := Decide(s, cmd, testNow)
				if !reflect.DeepEqual(s, before) {
					t.Fatalf("Decide changed its state:\n got %+v\nwant %+v", s, before)
				}
				if w.err == nil {
					if err != nil {
						t.Fatalf("Decide: %v, want success", err)
					}
					if !reflect.DeepEqual(events, w.events) {
						t.Fatalf("events:\n got %#v\nwant %#v", events, w.events)
					}
					return
				}
				if events != nil {
					t.Errorf("events = %#v, want nil on error", events)
				}
				wantOnly(t, err, w.err)
				var want string
				switch w.err {
				case ErrNotFound, ErrAlreadyExists:
					// The order id, then the sentinel's own text.
					want = "order order-1: " + w.err.Error()
				case ErrTransition:
					want = fmt.Sprintf("cannot %s order order-1: it is %v", CommandName(cmd), from)
					var te *TransitionError
					if !errors.As(err, &te) {
						t.Fatalf("errors.As(%v, *TransitionError) = false", err)
					}
					if *te != (TransitionError{OrderID: testOrderID, From: from, Command: CommandName(cmd)}) {
						t.Errorf("TransitionError = %+v", *te)
					}
				}
				if err.Error() != want {
					t.Errorf("err = %q, want %q", err, want)
				}
				var ve *ValidationError
				if errors.As(err, &ve) {
					t.Errorf("a state machine refusal is a *ValidationError: %v", err)
				}
			})
		}
	}
	if cases != 30 {
		t.Fatalf("ran %d cases, want 30", cases)
	}
}

func TestDecideEventFields(t *testing.T) {
	pending := stateIn(t, StatusPending)
	paid := stateIn(t, StatusPaid)
	tests := []struct {
		name  string
		state State
		cmd   Command
		want  Event
	}{
		{"empty payment method gets the default", pending, Pay{}, Paid{PaymentMethod: "unspecified", At: testNowUTC}},
		{"payment method kept", pending, Pay{PaymentMethod: "PayPal"}, Paid{PaymentMethod: "PayPal", At: testNowUTC}},
		{"payment method of max length", pending, Pay{PaymentMethod: strings.Repeat("p", MaxTextLength)}, Paid{PaymentMethod: strings.Repeat("p", MaxTextLength), At: testNowUTC}},
		{"empty tracking number kept empty", paid, Ship{}, Shipped{TrackingNumber: "", At: testNowUTC}},
		{"tracking number kept", paid, Ship{TrackingNumber: "TRK-ü-1"}, Shipped{TrackingNumber: "TRK-ü-1", At: testNowUTC}},
		{"empty cancel reason", pending, Cancel{}, Cancelled{Reason: "", At: testNowUTC}},
		{"cancel after payment keeps reason", paid, Cancel{Reason: "fraud"}, Cancelled{Reason: "fraud", At: testNowUTC}},
		{"deliver", stateIn(t, StatusShipped), Deliver{}, Delivered{At: testNowUTC}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, err := Decide(tt.state, tt.cmd, testNow)
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if len(events) != 1 || !reflect.DeepEqual(events[0], tt.want) {
				t.Fatalf("events = %#v, want [%#v]", events, tt.want)
			}
		})
	}
}

func TestDecideTimestampsAreUTC(t *testing.T) {
	zones := []*time.Location{time.UTC, time.FixedZone("minus-7", -7*3600), time.FixedZone("plus-5:45", 5*3600+45*60)}
	for _, loc := range zones {
		now := time.Date(2024, 12, 31, 23, 59, 59, 999, loc)
		events, err := Decide(State{}, seedCreate(), now)
		if err != nil {
			t.Fatalf("Decide: %v", err)
		}
		at := events[0].(Created).At
		if at.Location() != time.UTC || !at.Equal(now) || at != now.UTC() {
			t.Errorf("%v: At = %v (%v), want %v in UTC", loc, at, at.Location(), now.UTC())
		}
	}
	// A monotonic clock reading is dropped, so events compare with ==.
	wall := time.Now()
	events, err := Decide(State{}, seedCreate(), wall)
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	if at := events[0].(Created).At; at != wall.Round(0).UTC() {
		t.Errorf("At = %#v, want %#v", at, wall.Round(0).UTC())
	}
}

func TestDecideCreateCopiesItems(t *testing.T) {
	cmd := seedCreate()
	events, err := Decide(State{}, cmd, testNow)
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	cmd.Items[0].Quantity = 7
	cmd.Items[1].ProductID = "changed"
	got := events[0].(Created).Items
	want := seedCreate().Items
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("event items follow the caller's slice: %+v, want %+v", got, want)
	}
}

func TestDecideRejectsBadCommandText(t *testing.T) {
	long := strings.Repeat("x", MaxTextLength+1)
	tests := []struct {
		name      string
		from      Status
		cmd       Command
		field     string
		value     string
		wantError string
	}{
		{"payment method too long", StatusPending, Pay{PaymentMethod: long}, "paymentMethod", "257 bytes", "paymentMethod: must be at most 256 bytes (got 257 bytes)"},
		{"payment method not UTF-8", StatusPending, Pay{PaymentMethod: "card\xff"}, "paymentMethod", `"card\xff"`, `paymentMethod: must be valid UTF-8 (got "card\xff")`},
		{"tracking number too long", StatusPaid, Ship{TrackingNumber: long}, "trackingNumber", "257 bytes", "trackingNumber: must be at most 256 bytes (got 257 bytes)"},
		{"tracking number not UTF-8", StatusPaid, Ship{TrackingNumber: "\xc3\x28"}, "trackingNumber", `"\xc3("`, `trackingNumber: must be valid UTF-8 (got "\xc3(")`},
		{"cancel reason too long", StatusPending, Cancel{Reason: long}, "reason", "257 bytes", "reason: must be at most 256 bytes (got 257 bytes)"},
		{"cancel reason not UTF-8", StatusPaid, Cancel{Reason: "\x80"}, "reason", `"\x80"`, `reason: must be valid UTF-8 (got "\x80")`},
		{"payment method with NUL", StatusPending, Pay{PaymentMethod: "card\x00"}, "paymentMethod", `"card\x00"`, `paymentMethod: must not contain control characters (U+0000 at byte 4) (got "card\x00")`},
		{"tracking number with newline", StatusPaid, Ship{TrackingNumber: "T1\nT2"}, "trackingNumber", `"T1\nT2"`, `trackingNumber: must not contain control characters (U+000A at byte 2) (got "T1\nT2")`},
		{"cancel reason with tab", StatusPending, Cancel{Reason: "\tx"}, "reason", `"\tx"`, `reason: must not contain control characters (U+0009 at byte 0) (got "\tx")`},
		{"cancel reason with DEL", StatusPending, Cancel{Reason: "x\x7f"}, "reason", `"x\x7f"`, `reason: must not contain control characters (U+007F at byte 1) (got "x\x7f")`},
		{"cancel reason with C1 control", StatusPending, Cancel{Reason: "é\u0085"}, "reason", `"é\u0085"`, `reason: must not contain control characters (U+0085 at byte 2) (got "é\u0085")`},
		// Input is checked before the state machine: the bad value is reported
		// even when the transition is forbidden too.
		{"bad payment method on a shipped order", StatusShipped, Pay{PaymentMethod: long}, "paymentMethod", "257 bytes", "paymentMethod: must be at most 256 bytes (got 257 bytes)"},
		{"pointer command", StatusPending, &Pay{}, "command", "*order.Pay", "command: is not a known command (got *order.Pay)"},
		{"nil command", StatusPaid, nil, "command", "<nil>", "command: is not a known command (got <nil>)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, err := Decide(stateIn(t, tt.from), tt.cmd, testNow)
			if events != nil {
				t.Errorf("events = %#v, want nil", events)
			}
			wantOnly(t, err, ErrInvalid)
			checkValidation(t, err, tt.field, tt.value, tt.wantError)
		})
	}
}

// checkValidation asserts err is a *ValidationError for field with value,
// whose message is want and contains the value.
func checkValidation(t *testing.T, err error, field, value, want string) {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("errors.As(%v, *ValidationError) = false", err)
	}
	if ve.Field != field {
		t.Errorf("Field = %q, want %q", ve.Field, field)
	}
	if ve.Value != value {
		t.Errorf("Value = %q, want %q", ve.Value, value)
	}
	if err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
	if !strings.Contains(err.Error(), value) {
		t.Errorf("err = %q does not contain the value %q", err, value)
	}
	if !strings.HasPrefix(err.Error(), field+": ") {
		t.Errorf("err = %q does not start with the field %q", err, field)
	}
}

// items returns n valid items (1 x 1.00 each) with item i changed by edit.
func items(n int, edit func(i int, it *Item)) []Item {
	out := make([]Item, n)
	for i := range out {
		out[i] = Item{ProductID: fmt.Sprintf("p%d", i), Name: fmt.Sprintf("Product %d", i), Quantity: 1, UnitPrice: 100}
		if edit != nil {
			edit(i, &out[i])
		}
	}
	return out
}

// second applies f to the second item only.
func second(f func(it *Item)) func(int, *Item) {
	return func(i int, it *Item) {
		if i == 1 {
			f(it)
		}
	}
}

func TestValidateCreateRejects(t *testing.T) {
	tests := []struct {
		name      string
		cmd       Create
		field     string
		value     string
		wantError string
	}{
		{"empty customer", Create{CustomerID: "", Items: items(1, nil)}, "customerId", "", "customerId: is required"},
		{"customer too long", Create{CustomerID: strings.Repeat("c", MaxIDLength+1), Items: items(1, nil)}, "customerId", "129 bytes", "customerId: must be at most 128 bytes (got 129 bytes)"},
		{"customer not UTF-8", Create{CustomerID: "cust\xffomer", Items: items(1, nil)}, "customerId", `"cust\xffomer"`, `customerId: must be valid UTF-8 (got "cust\xffomer")`},
		{"customer not UTF-8, long value cut", Create{CustomerID: strings.Repeat("a", 50) + "\xff", Items: items(1, nil)}, "customerId", `"` + strings.Repeat("a", 40) + `..."`, `customerId: must be valid UTF-8 (got "` + strings.Repeat("a", 40) + `...")`},
		{"nil items", Create{CustomerID: "c"}, "items", "", "items: must list at least one item"},
		{"empty items", Create{CustomerID: "c", Items: []Item{}}, "items", "", "items: must list at least one item"},
		{"too many items", Create{CustomerID: "c", Items: items(MaxItems+1, nil)}, "items", "101 items", "items: must list at most 100 items (got 101 items)"},
		{"empty product", Create{CustomerID: "c", Items: items(3, second(func(it *Item) { it.ProductID = "" }))}, "items[1].productId", "", "items[1].productId: is required"},
		{"product too long", Create{CustomerID: "c", Items: items(3, second(func(it *Item) { it.ProductID = strings.Repeat("p", MaxIDLength+1) }))}, "items[1].productId", "129 bytes", "items[1].productId: must be at most 128 bytes (got 129 bytes)"},
		{"product not UTF-8", Create{CustomerID: "c", Items: items(3, second(func(it *Item) { it.ProductID = "\xfe\xff" }))}, "items[1].productId", `"\xfe\xff"`, `items[1].productId: must be valid UTF-8 (got "\xfe\xff")`},
		{"name too long", Create{CustomerID: "c", Items: items(3, second(func(it *Item) { it.Name = strings.Repeat("n", MaxTextLength+1) }))}, "items[1].name", "257 bytes", "items[1].name: must be at most 256 bytes (got 257 bytes)"},
		{"name not UTF-8", Create{CustomerID: "c", Items: items(3, second(func(it *Item) { it.Name = "Mo\xc0use" }))}, "items[1].name", `"Mo\xc0use"`, `items[1].name: must be valid UTF-8 (got "Mo\xc0use")`},
		{"customer with NUL", Create{CustomerID: "c\x00", Items: items(1, nil)}, "customerId", `"c\x00"`, `customerId: must not contain control characters (U+0000 at byte 1) (got "c\x00")`},
		{"product with escape", Create{CustomerID: "c", Items: items(3, second(func(it *Item) { it.ProductID = "\x1b[31m" }))}, "items[1].productId", `"\x1b[31m"`, `items[1].productId: must not contain control characters (U+001B at byte 0) (got "\x1b[31m")`},
		{"name with newline", Create{CustomerID: "c", Items: items(3, second(func(it *Item) { it.Name = "a\r\nb" }))}, "items[1].name", `"a\r\nb"`, `items[1].name: must not contain control characters (U+000D at byte 1) (got "a\r\nb")`},
		{"invalid UTF-8 reported before a control", Create{CustomerID: "\x00\xff", Items: items(1, nil)}, "customerId", `"\x00\xff"`, `customerId: must be valid UTF-8 (got "\x00\xff")`},
		{"quantity zero", Create{CustomerID: "c", Items: items(3, second(func(it *Item) { it.Quantity = 0 }))}, "items[1].quantity", "0", "items[1].quantity: must be between 1 and 10000 (got 0)"},
		{"quantity negative", Create{CustomerID: "c", Items: items(3, second(func(it *Item) { it.Quantity = -3 }))}, "items[1].quantity", "-3", "items[1].quantity: must be between 1 and 10000 (got -3)"},
		{"quantity min int32", Create{CustomerID: "c", Items: items(3, second(func(it *Item) { it.Quantity = -1 << 31 }))}, "items[1].quantity", "-2147483648", "items[1].quantity: must be between 1 and 10000 (got -2147483648)"},
		{"quantity too large", Create{CustomerID: "c", Items: items(3, second(func(it *Item) { it.Quantity = MaxQuantity + 1 }))}, "items[1].quantity", "10001", "items[1].quantity: must be between 1 and 10000 (got 10001)"},
		{"quantity max int32", Create{CustomerID: "c", Items: items(3, second(func(it *Item) { it.Quantity = 1<<31 - 1 }))}, "items[1].quantity", "2147483647", "items[1].quantity: must be between 1 and 10000 (got 2147483647)"},
		{"price zero", Create{CustomerID: "c", Items: items(3, second(func(it *Item) { it.UnitPrice = 0 }))}, "items[1].price", "0.00", "items[1].price: must be greater than 0 and at most 1000000.00 (got 0.00)"},
		{"price negative", Create{CustomerID: "c", Items: items(3, second(func(it *Item) { it.UnitPrice = -1 }))}, "items[1].price", "-0.01", "items[1].price: must be greater than 0 and at most 1000000.00 (got -0.01)"},
		{"price min int64", Create{CustomerID: "c", Items: items(3, second(func(it *Item) { it.UnitPrice = -1 << 63 }))}, "items[1].price", "-92233720368547758.08", "items[1].price: must be greater than 0 and at most 1000000.00 (got -92233720368547758.08)"},
		{"price above max", Create{CustomerID: "c", Items: items(3, second(func(it *Item) { it.UnitPrice = MaxPrice + 1 }))}, "items[1].price", "1000000.01", "items[1].price: must be greater than 0 and at most 1000000.00 (got 1000000.01)"},
		{"price max int64", Create{CustomerID: "c", Items: items(3, second(func(it *Item) { it.UnitPrice = 1<<63 - 1 }))}, "items[1].price", "92233720368547758.07", "items[1].price: must be greater than 0 and at most 1000000.00 (got 92233720368547758.07)"},
		{"first bad item is reported", Create{CustomerID: "c", Items: items(4, func(i int, it *Item) {
			if i >= 2 {
				it.Quantity = int32(-i)
			}
		})}, "items[2].quantity", "-2", "items[2].quantity: must be between 1 and 10000 (got -2)"},
		{"product checked before quantity", Create{CustomerID: "c", Items: items(1, func(_ int, it *Item) { it.ProductID, it.Quantity = "", 0 })}, "items[0].productId", "", "items[0].productId: is required"},
		{"last of max items", Create{CustomerID: "c", Items: items(MaxItems, func(i int, it *Item) {
			if i == MaxItems-1 {
				it.UnitPrice = 0
			}
		})}, "items[99].price", "0.00", "items[99].price: must be greater than 0 and at most 1000000.00 (got 0.00)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			total, err := ValidateCreate(tt.cmd)
			if total != 0 {
				t.Errorf("total = %d, want 0 on error", total)
			}
			wantOnly(t, err, ErrInvalid)
			checkValidation(t, err, tt.field, tt.value, tt.wantError)

			// Decide reports the same error for a new order.
			events, derr := Decide(State{ID: testOrderID}, tt.cmd, testNow)
			if events != nil || derr == nil || derr.Error() != err.Error() {
				t.Errorf("Decide = %v, %v; want nil, %v", events, derr, err)
			}
			wantOnly(t, derr, ErrInvalid)
		})
	}
}

func TestValidateCreateAccepts(t *testing.T) {
	tests := []struct {
		name  string
		cmd   Create
		total Cents
	}{
		{"seed order", seedCreate(), 105997},
		{"one cent", Create{CustomerID: "c", Items: items(1, func(_ int, it *Item) { it.UnitPrice = 1 })}, 1},
		{"empty name", Create{CustomerID: "c", Items: items(1, func(_ int, it *Item) { it.Name = "" })}, 100},
		{"limits of text", Create{CustomerID: strings.Repeat("c", MaxIDLength), Items: items(1, func(_ int, it *Item) {
			it.ProductID, it.Name = strings.Repeat("p", MaxIDLength), strings.Repeat("n", MaxTextLength)
		})}, 100},
		{"multi-byte UTF-8", Create{CustomerID: "kundé-日本", Items: items(1, func(_ int, it *Item) { it.ProductID, it.Name = "产品", "🙂" })}, 100},
		{"max quantity", Create{CustomerID: "c", Items: items(1, func(_ int, it *Item) { it.Quantity = MaxQuantity })}, 1_000_000},
		{"max price", Create{CustomerID: "c", Items: items(1, func(_ int, it *Item) { it.UnitPrice = MaxPrice })}, 100_000_000},
		{"max items", Create{CustomerID: "c", Items: items(MaxItems, nil)}, 10_000},
		{"distinct lines add up", Create{CustomerID: "c", Items: items(3, func(i int, it *Item) {
			it.Quantity, it.UnitPrice = int32(i+1), Cents(1000*(i+1)+i)
		})}, 1*1000 + 2*2001 + 3*3002},
		// The largest order the limits allow: it must be exact, not wrapped.
		{"largest possible total", Create{CustomerID: "c", Items: items(MaxItems, func(_ int, it *Item) {
			it.Quantity, it.UnitPrice = MaxQuantity, MaxPrice
		})}, 100_000_000_000_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			total, err := ValidateCreate(tt.cmd)
			if err != nil {
				t.Fatalf("ValidateCreate: %v", err)
			}
			if total != tt.total {
				t.Fatalf("total = %d, want %d", total, tt.total)
			}
		})
	}
}

func TestSeedOrderTotal(t *testing.T) {
	events, err := Decide(State{}, seedCreate(), testNow)
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	total := events[0].(Created).Total
	if total != 105997 {
		t.Fatalf("total = %d cents, want 105997", int64(total))
	}
	if got := total.String(); got != "1059.97" {
		t.Errorf("String = %q, want 1059.97", got)
	}
	if got := Evolve(State{}, events[0]).Total; got != 105997 {
		t.Errorf("folded total = %d, want 105997", int64(got))
	}
}

func TestMulCentsRefusesOverflow(t *testing.T) {
	const maxI64, minI64 = 1<<63 - 1, -1 << 63
	tests := []struct {
		a    Cents
		q    int32
		want Cents
		ok   bool
	}{
		{0, 5, 0, true},
		{5, 0, 0, true},
		{MaxPrice, MaxQuantity, 1_000_000_000_000, true},
		{maxI64, 1, maxI64, true},
		{maxI64 / 2, 2, maxI64 - 1, true},
		{maxI64/2 + 1, 2, 0, false},
		{maxI64, 2, 0, false},
		{maxI64 / 3, 1<<31 - 1, 0, false},
		{1 << 32, 1 << 30, 1 << 62, true},
		{1 << 33, 1 << 30, 0, false},
		{minI64 / 2, 2, minI64, true},
		{minI64/2 - 1, 2, 0, false},
		{minI64, 1, minI64, true},
		{minI64, -1, 0, false},
		{-1, -1 << 31, 1 << 31, true},
		{maxI64, -1, -maxI64, true},
	}
	for _, tt := range tests {
		got, ok := mulCents(tt.a, tt.q)
		if got != tt.want || ok != tt.ok {
			t.Errorf("mulCents(%d, %d) = %d, %v; want %d, %v", int64(tt.a), tt.q, int64(got), ok, int64(tt.want), tt.ok)
		}
	}
}

func TestEvolveFullLifecycle(t *testing.T) {
	t1 := time.Date(2025, 1, 2, 10, 0, 0, 0, time.FixedZone("X", -5*3600))
	t2, t3, t4 := t1.Add(time.Hour), t1.Add(26*time.Hour), t1.Add(72*time.Hour+time.Nanosecond)
	seed := seedCreate()

	s := State{ID: testOrderID}
	steps := []struct {
		cmd  Command
		at   time.Time
		want State
	}{
		{seed, t1, State{ID: testOrderID, CustomerID: "customer-42", Items: seed.Items, Status: StatusPending, Total: 105997, Version: 1, CreatedAt: t1.UTC()}},
		{Pay{}, t2, State{ID: testOrderID, CustomerID: "customer-42", Items: seed.Items, Status: StatusPaid, Total: 105997, Version: 2, CreatedAt: t1.UTC(),
			PaymentMethod: "unspecified", PaidAt: t2.UTC()}},
		{Ship{TrackingNumber: "1Z-42"}, t3, State{ID: testOrderID, CustomerID: "customer-42", Items: seed.Items, Status: StatusShipped, Total: 105997, Version: 3, CreatedAt: t1.UTC(),
			PaymentMethod: "unspecified", PaidAt: t2.UTC(), TrackingNumber: "1Z-42", ShippedAt: t3.UTC()}},
		{Deliver{}, t4, State{ID: testOrderID, CustomerID: "customer-42", Items: seed.Items, Status: StatusDelivered, Total: 105997, Version: 4, CreatedAt: t1.UTC(),
			PaymentMethod: "unspecified", PaidAt: t2.UTC(), TrackingNumber: "1Z-42", ShippedAt: t3.UTC(), DeliveredAt: t4.UTC()}},
	}
	var history []Event
	for _, st := range steps {
		events, err := Decide(s, st.cmd, st.at)
		if err != nil {
			t.Fatalf("%s: %v", CommandName(st.cmd), err)
		}
		history = append(history, events...)
		for _, e := range events {
			s = Evolve(s, e)
		}
		if !reflect.DeepEqual(s, st.want) {
			t.Fatalf("after %s:\n got %+v\nwant %+v", CommandName(st.cmd), s, st.want)
		}
	}

	// Folding the history from scratch gives the same state.
	replayed := State{ID: testOrderID}
	for _, e := range history {
		replayed = Evolve(replayed, e)
	}
	if !reflect.DeepEqual(replayed, steps[len(steps)-1].want) {
		t.Fatalf("replay:\n got %+v\nwant %+v", replayed, steps[len(steps)-1].want)
	}
	wantTypes := []string{"OrderCreated", "OrderPaid", "OrderShipped", "OrderDelivered"}
	for i, e := range history {
		if e.EventType() != wantTypes[i] {
			t.Errorf("event %d is %s, want %s", i, e.EventType(), wantTypes[i])
		}
	}
}

func TestEvolveCancelledLifecycle(t *testing.T) {
	t1 := time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)
	t2, t3 := t1.Add(time.Minute), t1.Add(2*time.Minute)
	seed := seedCreate()
	history := []Event{
		Created{CustomerID: seed.CustomerID, Items: seed.Items, Total: 105997, At: t1},
		Paid{PaymentMethod: "card", At: t2},
		Cancelled{Reason: "out of stock", At: t3},
	}
	s := State{ID: "o-9"}
	for _, e := range history {
		s = Evolve(s, e)
	}
	want := State{ID: "o-9", CustomerID: "customer-42", Items: seed.Items, Status: StatusCancelled, Total: 105997, Version: 3,
		CreatedAt: t1, PaymentMethod: "card", PaidAt: t2, CancelReason: "out of stock", CancelledAt: t3}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("got  %+v\nwant %+v", s, want)
	}
	if !s.Exists() {
		t.Error("Exists() = false for a cancelled order")
	}
}

func TestEvolveDoesNotChangeItsInputAndCountsUnknownEvents(t *testing.T) {
	s := stateIn(t, StatusPending)
	before := cloneState(s)
	next := Evolve(s, Paid{PaymentMethod: "cash", At: testNowUTC})
	if !reflect.DeepEqual(s, before) {
		t.Fatalf("Evolve changed its input: %+v", s)
	}
	if next.Status != StatusPaid || next.Version != 2 {
		t.Fatalf("next = %v v%d, want Paid v2", next.Status, next.Version)
	}
	// Events are facts: an event Evolve does not know still takes a version.
	unknown := Evolve(next, nil)
	next.Version++
	if !reflect.DeepEqual(unknown, next) {
		t.Fatalf("unknown event:\n got %+v\nwant %+v", unknown, next)
	}
}

func TestStatus(t *testing.T) {
	names := map[Status]string{
		StatusNone: "None", StatusPending: "Pending", StatusPaid: "Paid", StatusShipped: "Shipped",
		StatusDelivered: "Delivered", StatusCancelled: "Cancelled", -1: "Status(-1)", 6: "Status(6)",
	}
	for s, want := range names {
		if got := s.String(); got != want {
			t.Errorf("Status(%d).String() = %q, want %q", int(s), got, want)
		}
	}
	want := []Status{StatusPending, StatusPaid, StatusShipped, StatusDelivered, StatusCancelled}
	if got := Statuses(); !slices.Equal(got, want) {
		t.Errorf("Statuses() = %v, want %v", got, want)
	}
	if (&State{}).Exists() {
		t.Error("zero State exists")
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		in   string
		want Status
		ok   bool
	}{
		{"Pending", StatusPending, true},
		{"pending", StatusPending, true},
		{"PAID", StatusPaid, true},
		{"sHiPpEd", StatusShipped, true},
		{"delivered", StatusDelivered, true},
		{"Cancelled", StatusCancelled, true},
		{"None", StatusNone, false},
		{"none", StatusNone, false},
		{"", StatusNone, false},
		{"Pend", StatusNone, false},
		{"Pendings", StatusNone, false},
		{" Paid", StatusNone, false},
		{"Paid ", StatusNone, false},
		{"Canceled", StatusNone, false},
		{"P@id", StatusNone, false},
		{"Pa\x00d", StatusNone, false},
		{"Ｐaid", StatusNone, false},
		{"1", StatusNone, false},
	}
	for _, tt := range tests {
		got, ok := ParseStatus(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseStatus(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
	for _, s := range Statuses() {
		if got, ok := ParseStatus(s.String()); !ok || got != s {
			t.Errorf("ParseStatus(%q) = %v, %v", s.String(), got, ok)
		}
	}
}

func TestNames(t *testing.T) {
	commands := map[string]Command{"create": Create{}, "pay": Pay{}, "ship": Ship{}, "deliver": Deliver{}, "cancel": Cancel{}}
	for want, c := range commands {
		if got := CommandName(c); got != want {
			t.Errorf("CommandName(%T) = %q, want %q", c, got, want)
		}
	}
	events := map[string]Event{"OrderCreated": Created{}, "OrderPaid": Paid{}, "OrderShipped": Shipped{}, "OrderDelivered": Delivered{}, "OrderCancelled": Cancelled{}}
	for want, e := range events {
		if got := e.EventType(); got != want {
			t.Errorf("%T.EventType() = %q, want %q", e, got, want)
		}
	}
}

func TestErrorTypes(t *testing.T) {
	ve := &ValidationError{Field: "f", Reason: "is wrong"}
	if got := ve.Error(); got != "f: is wrong" {
		t.Errorf("ValidationError without value = %q", got)
	}
	ve.Value = "42"
	if got := ve.Error(); got != "f: is wrong (got 42)" {
		t.Errorf("ValidationError with value = %q", got)
	}
	wrapped := fmt.Errorf("decoding: %w", ve)
	wantOnly(t, wrapped, ErrInvalid)
	var gotVE *ValidationError
	if !errors.As(wrapped, &gotVE) || gotVE != ve {
		t.Errorf("errors.As through a wrap failed: %v", gotVE)
	}

	te := &TransitionError{OrderID: "o", From: StatusDelivered, Command: "cancel"}
	if got := te.Error(); got != "cannot cancel order o: it is Delivered" {
		t.Errorf("TransitionError = %q", got)
	}
	wantOnly(t, fmt.Errorf("x: %w", te), ErrTransition)
}

// ValidateText refuses exactly what Decide refuses for the text of a
// transition, naming the same field.
func TestValidateTextAgreesWithDecide(t *testing.T) {
	for _, cmd := range []Command{
		Pay{}, Pay{PaymentMethod: "card"}, Pay{PaymentMethod: "card\x00"}, Pay{PaymentMethod: strings.Repeat("p", MaxTextLength+1)},
		Ship{TrackingNumber: "T1"}, Ship{TrackingNumber: "\xff"}, Cancel{Reason: "a\tb"}, Cancel{Reason: "ok"}, Deliver{},
	} {
		from := StatusPending
		if _, ok := cmd.(Ship); ok {
			from = StatusPaid
		}
		if _, ok := cmd.(Deliver); ok {
			from = StatusShipped
		}
		_, derr := Decide(stateIn(t, from), cmd, testNow)
		verr := ValidateText(cmd)
		if (derr == nil) != (verr == nil) || (verr != nil && verr.Error() != derr.Error()) {
			t.Errorf("%#v: ValidateText %v, Decide %v", cmd, verr, derr)
		}
	}
}

func TestDecideNeverDatesAnEventBeforeTheLastOne(t *testing.T) {
	last := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	created := State{ID: "o", Status: StatusPending, CreatedAt: last, Version: 1}
	paid := State{ID: "o", Status: StatusPaid, CreatedAt: last.Add(-time.Hour), PaidAt: last, Version: 2}
	shipped := State{ID: "o", Status: StatusShipped, CreatedAt: last.Add(-2 * time.Hour), PaidAt: last.Add(-time.Hour), ShippedAt: last, Version: 3}
	tests := []struct {
		name string
		s    State
		cmd  Command
		now  time.Time
		want time.Time
	}{
		{"create on no order takes now", State{ID: "o"}, seedCreate(), last.Add(-time.Hour), last.Add(-time.Hour)},
		{"pay an hour behind the create", created, Pay{}, last.Add(-time.Hour), last},
		{"pay a nanosecond behind", created, Pay{}, last.Add(-time.Nanosecond), last},
		{"pay at the same instant", created, Pay{}, last, last},
		{"pay after the create takes now", created, Pay{}, last.Add(time.Second), last.Add(time.Second)},
		{"cancel behind the payment", paid, Cancel{}, last.Add(-30 * time.Minute), last},
		{"ship behind the payment", paid, Ship{}, time.Time{}, last},
		{"deliver behind the shipment, in another zone", shipped, Deliver{}, last.Add(-time.Hour).In(time.FixedZone("plus-1", 3600)), last},
		{"a zone does not make now earlier", created, Pay{}, last.Add(time.Minute).In(time.FixedZone("minus-7", -7*3600)), last.Add(time.Minute)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, err := Decide(tt.s, tt.cmd, tt.now)
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			at := eventAt(events[0])
			if at != tt.want || at.Location() != time.UTC {
				t.Fatalf("At = %v (%v), want %v in UTC", at, at.Location(), tt.want)
			}
		})
	}
}

func TestLastEventAt(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if got := (&State{}).LastEventAt(); !got.IsZero() {
		t.Fatalf("no events: %v, want the zero time", got)
	}
	// A journal written before the rule may hold an event dated before
	// the one it follows: the latest of them counts.
	s := State{CreatedAt: t0, PaidAt: t0.Add(-time.Hour), CancelledAt: t0.Add(-2 * time.Hour)}
	if got := s.LastEventAt(); got != t0 {
		t.Fatalf("LastEventAt = %v, want %v", got, t0)
	}
}

// eventAt is the timestamp of any event.
func eventAt(e Event) time.Time {
	switch e := e.(type) {
	case Created:
		return e.At
	case Paid:
		return e.At
	case Shipped:
		return e.At
	case Delivered:
		return e.At
	case Cancelled:
		return e.At
	}
	panic(fmt.Sprintf("unknown event %T", e))
}
