package order

import (
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// Status is where an order stands in its state machine.
type Status int

// The states of an order. The zero value means the order does not exist yet.
const (
	StatusNone Status = iota
	StatusPending
	StatusPaid
	StatusShipped
	StatusDelivered
	StatusCancelled
)

var statusNames = [...]string{"None", "Pending", "Paid", "Shipped", "Delivered", "Cancelled"}

// String returns the status name used on the wire ("Pending", "Paid", ...).
func (s Status) String() string {
	if s < 0 || int(s) >= len(statusNames) {
		return fmt.Sprintf("Status(%d)", int(s))
	}
	return statusNames[s]
}

// ParseStatus reads a status name, case-insensitively.
func ParseStatus(s string) (Status, bool) {
	for i, n := range statusNames[1:] {
		if equalFold(n, s) {
			return Status(i + 1), true
		}
	}
	return StatusNone, false
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i]|0x20, b[i]|0x20
		if x != y {
			return false
		}
	}
	return true
}

// Statuses lists the states an existing order can be in, in order.
func Statuses() []Status {
	return []Status{StatusPending, StatusPaid, StatusShipped, StatusDelivered, StatusCancelled}
}

// Item is one order line.
type Item struct {
	ProductID string
	Name      string
	Quantity  int32
	UnitPrice Cents
}

// State is an order folded from its events. The zero value is "no order".
type State struct {
	ID             string
	CustomerID     string
	Items          []Item
	Status         Status
	Total          Cents
	Version        uint64
	CreatedAt      time.Time
	PaymentMethod  string
	PaidAt         time.Time
	TrackingNumber string
	ShippedAt      time.Time
	DeliveredAt    time.Time
	CancelReason   string
	CancelledAt    time.Time
}

// Exists reports whether the order has been created.
func (s *State) Exists() bool { return s.Status != StatusNone }

// LastEventAt is the latest timestamp among the order's events (the zero
// time when it has none): the time of the event the next one follows, which
// Decide never dates a new event before.
func (s *State) LastEventAt() time.Time {
	var last time.Time
	for _, t := range []time.Time{s.CreatedAt, s.PaidAt, s.ShippedAt, s.DeliveredAt, s.CancelledAt} {
		if t.After(last) {
			last = t
		}
	}
	return last
}

// eventTime is when Decide dates an event decided at now on an order in
// state s: now, or the order's last event time if now is before it (the
// member that decides may run behind the one that wrote the last event).
// Timestamps of one order thus never go backwards; two events may carry the
// same time, and their versions order them.
func eventTime(s *State, now time.Time) time.Time {
	now = now.UTC()
	if last := s.LastEventAt(); now.Before(last) {
		return last.UTC()
	}
	return now
}

// Limits on input sizes.
const (
	MaxItems       = 100
	MaxQuantity    = 10_000
	MaxIDLength    = 128
	MaxTextLength  = 256
	DefaultPayment = "unspecified"
)

// Commands an order accepts.
type (
	// Command is one of Create, Pay, Ship, Deliver, Cancel.
	Command interface{ commandName() string }

	Create struct {
		CustomerID string
		Items      []Item
	}
	Pay     struct{ PaymentMethod string }
	Ship    struct{ TrackingNumber string }
	Deliver struct{}
	Cancel  struct{ Reason string }
)

func (Create) commandName() string  { return "create" }
func (Pay) commandName() string     { return "pay" }
func (Ship) commandName() string    { return "ship" }
func (Deliver) commandName() string { return "deliver" }
func (Cancel) commandName() string  { return "cancel" }

// CommandName returns "create", "pay", "ship", "deliver" or "cancel".
func CommandName(c Command) string { return c.commandName() }

// Events an order records.
type (
	// Event is one of Created, Paid, Shipped, Delivered, Cancelled.
	Event interface{ EventType() string }

	Created struct {
		CustomerID string
		Items      []Item
		Total      Cents
		At         time.Time
	}
	Paid struct {
		PaymentMethod string
		At            time.Time
	}
	Shipped struct {
		TrackingNumber string
		At             time.Time
	}
	Delivered struct{ At time.Time }
	Cancelled struct {
		Reason string
		At     time.Time
	}
)

// EventType returns the wire name of the event.
func (Created) EventType() string   { return "OrderCreated" }
func (Paid) EventType() string      { return "OrderPaid" }
func (Shipped) EventType() string   { return "OrderShipped" }
func (Delivered) EventType() string { return "OrderDelivered" }
func (Cancelled) EventType() string { return "OrderCancelled" }

// EventTime is when e happened (the zero time for an unknown event).
func EventTime(e Event) time.Time {
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
	return time.Time{}
}

// Errors of the domain. Decide returns them wrapped in the typed errors below.
var (
	// ErrInvalid marks bad input (HTTP 400).
	ErrInvalid = errors.New("invalid input")
	// ErrNotFound means the order does not exist (HTTP 404).
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists means a create reached an order that exists (HTTP 409).
	ErrAlreadyExists = errors.New("already exists")
	// ErrTransition means the state machine forbids the command (HTTP 409).
	ErrTransition = errors.New("transition not allowed")
)

// ValidationError names the field and the value that were wrong.
type ValidationError struct {
	Field  string
	Value  string
	Reason string
}

func (e *ValidationError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("%s: %s", e.Field, e.Reason)
	}
	return fmt.Sprintf("%s: %s (got %s)", e.Field, e.Reason, e.Value)
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// TransitionError says which command the current status forbids.
type TransitionError struct {
	OrderID string
	From    Status
	Command string
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("cannot %s order %s: it is %s", e.Command, e.OrderID, e.From)
}

// Is makes errors.Is(err, ErrTransition) true.
func (e *TransitionError) Is(target error) bool { return target == ErrTransition }

func invalid(field, value, reason string) error {
	return &ValidationError{Field: field, Value: value, Reason: reason}
}

func quote(s string) string {
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return fmt.Sprintf("%q", s)
}

// textOK reports whether checkText would accept v.
func textOK(v string, required bool, max int) bool {
	return (v != "" || !required) && len(v) <= max && badText(v) < 0
}

// badText returns the byte offset of the first character a text field
// refuses, or -1: invalid UTF-8, or a control character (C0 including tab,
// newline and NUL; DEL; C1). Text fields are identifiers and one-line
// labels that end up in logs, CSV exports and terminals.
func badText(v string) int {
	for i := 0; i < len(v); {
		c := v[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return i
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(v[i:])
		if (r == utf8.RuneError && size == 1) || (r >= 0x80 && r <= 0x9f) {
			return i
		}
		i += size
	}
	return -1
}

func checkText(field, v string, required bool, max int) error {
	switch {
	case required && v == "":
		return invalid(field, "", "is required")
	case len(v) > max:
		return invalid(field, fmt.Sprintf("%d bytes", len(v)), fmt.Sprintf("must be at most %d bytes", max))
	}
	i := badText(v)
	switch {
	case i < 0:
		return nil
	case !utf8.ValidString(v):
		return invalid(field, quote(v), "must be valid UTF-8")
	default:
		r, _ := utf8.DecodeRuneInString(v[i:])
		return invalid(field, quote(v), fmt.Sprintf("must not contain control characters (%U at byte %d)", r, i))
	}
}

// ValidateText checks the text of a transition (Pay, Ship, Cancel) as
// Decide does, without the order: the HTTP edge refuses bad input before it
// reaches an actor. Create is checked by ValidateCreate.
func ValidateText(cmd Command) error {
	switch c := cmd.(type) {
	case Pay:
		return c.validate()
	case Ship:
		return c.validate()
	case Cancel:
		return c.validate()
	}
	return nil
}

func (c Pay) validate() error {
	return checkText("paymentMethod", c.PaymentMethod, false, MaxTextLength)
}

func (c Ship) validate() error {
	return checkText("trackingNumber", c.TrackingNumber, false, MaxTextLength)
}

func (c Cancel) validate() error { return checkText("reason", c.Reason, false, MaxTextLength) }

// ValidateCreate checks a create command and returns its total.
func ValidateCreate(c Create) (Cents, error) {
	if err := checkText("customerId", c.CustomerID, true, MaxIDLength); err != nil {
		return 0, err
	}
	if len(c.Items) == 0 {
		return 0, invalid("items", "", "must list at least one item")
	}
	if len(c.Items) > MaxItems {
		return 0, invalid("items", fmt.Sprintf("%d items", len(c.Items)), fmt.Sprintf("must list at most %d items", MaxItems))
	}
	var total Cents
	for i, it := range c.Items {
		// Field names are built only for an error: this loop runs for every
		// create.
		field := func(f string) string { return "items[" + strconv.Itoa(i) + "]." + f }
		if !textOK(it.ProductID, true, MaxIDLength) {
			return 0, checkText(field("productId"), it.ProductID, true, MaxIDLength)
		}
		if !textOK(it.Name, false, MaxTextLength) {
			return 0, checkText(field("name"), it.Name, false, MaxTextLength)
		}
		if it.Quantity <= 0 || it.Quantity > MaxQuantity {
			return 0, invalid(field("quantity"), fmt.Sprint(it.Quantity), fmt.Sprintf("must be between 1 and %d", MaxQuantity))
		}
		if it.UnitPrice <= 0 || it.UnitPrice > MaxPrice {
			return 0, invalid(field("price"), it.UnitPrice.String(), fmt.Sprintf("must be greater than 0 and at most %s", MaxPrice))
		}
		line, ok := mulCents(it.UnitPrice, it.Quantity)
		if !ok || total+line < total {
			return 0, invalid("items", "", "total is out of range")
		}
		total += line
	}
	return total, nil
}

// Decide returns the events a command produces on an order in state s, or
// why it is refused. now stamps the events, in UTC, unless it is before the
// order's last event (s.LastEventAt): an event is never dated before the one
// it follows, whatever the clock of the member that decides it says; it then
// carries the same time. It never changes s.
func Decide(s State, cmd Command, now time.Time) ([]Event, error) {
	now = eventTime(&s, now)
	if c, ok := cmd.(Create); ok {
		if s.Exists() {
			return nil, fmt.Errorf("order %s: %w", s.ID, ErrAlreadyExists)
		}
		total, err := ValidateCreate(c)
		if err != nil {
			return nil, err
		}
		items := append([]Item(nil), c.Items...)
		return []Event{Created{CustomerID: c.CustomerID, Items: items, Total: total, At: now}}, nil
	}
	if !s.Exists() {
		return nil, fmt.Errorf("order %s: %w", s.ID, ErrNotFound)
	}
	refuse := func() error { return &TransitionError{OrderID: s.ID, From: s.Status, Command: cmd.commandName()} }
	switch c := cmd.(type) {
	case Pay:
		if err := c.validate(); err != nil {
			return nil, err
		}
		if s.Status != StatusPending {
			return nil, refuse()
		}
		m := c.PaymentMethod
		if m == "" {
			m = DefaultPayment
		}
		return []Event{Paid{PaymentMethod: m, At: now}}, nil
	case Ship:
		if err := c.validate(); err != nil {
			return nil, err
		}
		if s.Status != StatusPaid {
			return nil, refuse()
		}
		return []Event{Shipped{TrackingNumber: c.TrackingNumber, At: now}}, nil
	case Deliver:
		if s.Status != StatusShipped {
			return nil, refuse()
		}
		return []Event{Delivered{At: now}}, nil
	case Cancel:
		if err := c.validate(); err != nil {
			return nil, err
		}
		if s.Status != StatusPending && s.Status != StatusPaid {
			return nil, refuse()
		}
		return []Event{Cancelled{Reason: c.Reason, At: now}}, nil
	default:
		return nil, invalid("command", fmt.Sprintf("%T", cmd), "is not a known command")
	}
}

// Evolve applies one event to s and returns the new state with Version
// incremented. Events are facts: Evolve never refuses one.
func Evolve(s State, e Event) State {
	s.Version++
	switch e := e.(type) {
	case Created:
		s.CustomerID, s.Items, s.Total, s.CreatedAt, s.Status = e.CustomerID, e.Items, e.Total, e.At, StatusPending
	case Paid:
		s.PaymentMethod, s.PaidAt, s.Status = e.PaymentMethod, e.At, StatusPaid
	case Shipped:
		s.TrackingNumber, s.ShippedAt, s.Status = e.TrackingNumber, e.At, StatusShipped
	case Delivered:
		s.DeliveredAt, s.Status = e.At, StatusDelivered
	case Cancelled:
		s.CancelReason, s.CancelledAt, s.Status = e.Reason, e.At, StatusCancelled
	}
	return s
}
