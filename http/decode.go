package httpapi

import (
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/ordersystem/ordersystem/order"
	"github.com/ordersystem/ordersystem/proto/orderpb"
)

// The keys of each request object, exactly as they must be spelled.
var (
	createKeys = []string{"customerId", "items"}
	itemKeys   = []string{"productId", "name", "quantity", "price"}
)

// itemField holds the field names of one item, built once: they are only
// used in errors, but passed on every decode.
type itemField struct{ item, productID, name, quantity, price string }

var itemFields = func() []itemField {
	out := make([]itemField, order.MaxItems)
	for i := range out {
		p := "items[" + strconv.Itoa(i) + "]"
		out[i] = itemField{p, p + ".productId", p + ".name", p + ".quantity", p + ".price"}
	}
	return out
}()

func invalidField(field, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "invalid_argument", field: field, msg: field + ": " + fmt.Sprintf(format, args...)}
}

// decodeCreate reads the body of POST /orders and validates it as the
// domain would, so that bad input never reaches an actor.
func decodeCreate(body []byte) (*orderpb.CreateOrder, error) {
	r := jsonReader{b: body}
	if r.end() {
		return nil, badRequest("request body is required (JSON)")
	}
	if err := r.object(""); err != nil {
		return nil, err
	}
	out := &orderpb.CreateOrder{}
	var seen [maxKeys]bool
	for first := true; ; first = false {
		k, ok, err := r.key("", createKeys, &seen, first)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		switch k {
		case 0:
			out.CustomerId, err = r.str("customerId")
		case 1:
			out.Items, err = r.items()
		}
		if err != nil {
			return nil, err
		}
	}
	if !r.end() {
		return nil, badRequest("request body must hold exactly one JSON object")
	}
	if _, err := order.ValidateCreate(order.Create{CustomerID: out.CustomerId, Items: itemsFromProto(out.Items)}); err != nil {
		return nil, validationError(err)
	}
	return out, nil
}

// validationError turns the domain's refusal into a 400 naming the field.
func validationError(err error) error {
	var ve *order.ValidationError
	if errors.As(err, &ve) {
		return &apiError{status: http.StatusBadRequest, code: "invalid_argument", field: ve.Field, msg: ve.Error()}
	}
	return err
}

// items reads the items array; null reads as none. It stops at the first
// item past order.MaxItems.
func (r *jsonReader) items() ([]*orderpb.Item, error) {
	if isNull, err := r.null(); isNull || err != nil {
		return nil, err
	}
	if err := r.array("items"); err != nil {
		return nil, err
	}
	out := make([]*orderpb.Item, 0, 4)
	for i := 0; ; i++ {
		more, err := r.elem("items", i == 0)
		if err != nil {
			return nil, err
		}
		if !more {
			return out, nil
		}
		if i == order.MaxItems {
			return nil, invalidField("items", "must list at most %d items (got more)", order.MaxItems)
		}
		it, err := r.item(&itemFields[i])
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
}

func (r *jsonReader) item(f *itemField) (*orderpb.Item, error) {
	if err := r.object(f.item); err != nil {
		return nil, err
	}
	it := &orderpb.Item{}
	var seen [maxKeys]bool
	var q, p string
	for first := true; ; first = false {
		k, ok, err := r.key(f.item, itemKeys, &seen, first)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		switch k {
		case 0:
			it.ProductId, err = r.str(f.productID)
		case 1:
			it.Name, err = r.str(f.name)
		case 2:
			q, err = r.number(f.quantity)
		case 3:
			p, err = r.number(f.price)
		}
		if err != nil {
			return nil, err
		}
	}
	var err error
	if it.Quantity, err = quantity(q); err != nil {
		return nil, invalidField(f.quantity, "%v", err)
	}
	if p == "" {
		return nil, invalidField(f.price, "is required")
	}
	c, err := order.ParseCents(p)
	if err != nil {
		return nil, invalidField(f.price, "%v", err)
	}
	it.UnitPriceCents = int64(c)
	return it, nil
}

func itemsFromProto(items []*orderpb.Item) []order.Item {
	out := make([]order.Item, len(items))
	for i, it := range items {
		out[i] = order.Item{ProductID: it.GetProductId(), Name: it.GetName(), Quantity: it.GetQuantity(), UnitPrice: order.Cents(it.GetUnitPriceCents())}
	}
	return out
}

func quantity(n string) (int32, error) {
	if n == "" {
		return 0, errors.New("is required")
	}
	v, err := strconv.ParseInt(n, 10, 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return 0, fmt.Errorf("must be between 1 and %d (got %s)", order.MaxQuantity, truncate(n, 40))
		}
		return 0, fmt.Errorf("must be a whole number (got %s)", truncate(n, 40))
	}
	if v < 1 || v > order.MaxQuantity || v > math.MaxInt32 {
		return 0, fmt.Errorf("must be between 1 and %d (got %d)", order.MaxQuantity, v)
	}
	return int32(v), nil
}

// The one key of each transition's optional body (deliver has none).
var transitionKeys = map[string][]string{
	"pay":     {"paymentMethod"},
	"ship":    {"trackingNumber"},
	"cancel":  {"reason"},
	"deliver": {},
}

// decodeTransition reads the optional body of a transition: empty, or an
// object with at most the transition's one key.
func decodeTransition(op string, body []byte) (*orderpb.Command, error) {
	keys, ok := transitionKeys[op]
	if !ok {
		op, keys = "deliver", nil
	}
	var text string
	r := jsonReader{b: body}
	if !r.end() {
		if err := r.object(""); err != nil {
			return nil, err
		}
		var seen [maxKeys]bool
		for first := true; ; first = false {
			_, ok, err := r.key("", keys, &seen, first)
			if err != nil {
				return nil, err
			}
			if !ok {
				break
			}
			if text, err = r.str(keys[0]); err != nil {
				return nil, err
			}
		}
		if !r.end() {
			return nil, badRequest("request body must hold exactly one JSON object")
		}
	}
	var cmd *orderpb.Command
	var check order.Command
	switch op {
	case "pay":
		cmd = &orderpb.Command{Command: &orderpb.Command_Pay{Pay: &orderpb.PayOrder{PaymentMethod: text}}}
		check = order.Pay{PaymentMethod: text}
	case "ship":
		cmd = &orderpb.Command{Command: &orderpb.Command_Ship{Ship: &orderpb.ShipOrder{TrackingNumber: text}}}
		check = order.Ship{TrackingNumber: text}
	case "cancel":
		cmd = &orderpb.Command{Command: &orderpb.Command_Cancel{Cancel: &orderpb.CancelOrder{Reason: text}}}
		check = order.Cancel{Reason: text}
	default:
		return &orderpb.Command{Command: &orderpb.Command_Deliver{Deliver: &orderpb.DeliverOrder{}}}, nil
	}
	if err := order.ValidateText(check); err != nil {
		return nil, validationError(err)
	}
	return cmd, nil
}

// fullBody is a request body that readBody has read in full.
type fullBody struct {
	data []byte
	off  int
}

func (b *fullBody) Read(p []byte) (int, error) {
	if b.off >= len(b.data) {
		return 0, io.EOF
	}
	n := copy(p, b.data[b.off:])
	b.off += n
	return n, nil
}

func (b *fullBody) Close() error { return nil }

// requestBody returns the body readBody read (or reads it now).
func requestBody(r *http.Request) ([]byte, error) {
	if b, ok := r.Body.(*fullBody); ok {
		return b.data, nil
	}
	return readAll(r.Body, r.ContentLength)
}

// readAll reads a body of n bytes (-1: unknown). It grows the buffer as the
// bytes arrive instead of trusting n, so that a client announcing 1 MiB and
// sending nothing holds no megabyte.
func readAll(body io.Reader, n int64) ([]byte, error) {
	if body == nil || body == http.NoBody || n == 0 {
		return nil, nil
	}
	size := int64(512)
	if n > 0 {
		size = min(n+1, 64<<10) // +1: room for the EOF read
	}
	b := make([]byte, 0, size)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		m, err := body.Read(b[len(b):cap(b)])
		b = b[:len(b)+m]
		if errors.Is(err, io.EOF) {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// bodyError explains why a body could not be read: too large (413), not in
// time (408), or cut off.
func bodyError(err error) error {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return err
	case errors.Is(err, os.ErrDeadlineExceeded):
		return &apiError{status: http.StatusRequestTimeout, code: "request_timeout", msg: "the request body did not arrive in time"}
	}
	return badRequest("request body could not be read: %v", err)
}

// jsonMediaType reports whether a Content-Type is JSON: application/json in
// any case, with at most a charset parameter of utf-8.
func jsonMediaType(ct string) bool {
	if ct == "application/json" {
		return true
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return false
	}
	for k, v := range params {
		if k != "charset" || !equalFoldASCII(v, "utf-8") {
			return false
		}
	}
	return true
}

func unsupportedMediaType(format string, args ...any) *apiError {
	return &apiError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type", msg: fmt.Sprintf(format, args...)}
}

// checkContentType refuses a body that is not declared as JSON. cts are the
// request's Content-Type headers; nonEmpty says whether it has a body (or
// may have one, before it is read).
func checkContentType(cts []string, nonEmpty bool) error {
	switch {
	case len(cts) > 1:
		return unsupportedMediaType("Content-Type: send one header, application/json (got %d)", len(cts))
	case len(cts) == 1 && !jsonMediaType(cts[0]):
		return unsupportedMediaType("Content-Type: must be application/json (got %q)", truncate(cts[0], 80))
	case len(cts) == 0 && nonEmpty:
		return unsupportedMediaType("Content-Type: a request body must be sent as application/json (no Content-Type header)")
	}
	return nil
}

// queryParam is one query parameter a route reads, filled by parseQuery.
type queryParam struct {
	name  string
	value string
	set   bool
}

// parseQuery reads a raw query strictly into params: every parameter must
// be one of them and appear at most once, and a malformed escape or a ';'
// is refused. url.ParseQuery would skip the bad ones, and Go drops every
// parameter past 10,000, silently: a filtered list would become unfiltered.
func parseQuery(raw string, params []queryParam) error {
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		if part == "" {
			continue
		}
		if strings.Contains(part, ";") {
			return badRequest("query: %q: ';' does not separate parameters (use '&')", truncate(part, 80))
		}
		k, v, _ := strings.Cut(part, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			return badRequest("query: malformed escape in the parameter name %q", truncate(k, 80))
		}
		var p *queryParam
		for i := range params {
			if params[i].name == key {
				p = &params[i]
			}
		}
		if p == nil {
			return unknownQueryParam(key, params)
		}
		if p.set {
			return &apiError{status: http.StatusBadRequest, code: "invalid_argument", field: p.name,
				msg: fmt.Sprintf("%s: query parameter given more than once", p.name)}
		}
		if p.value, err = url.QueryUnescape(v); err != nil {
			return &apiError{status: http.StatusBadRequest, code: "invalid_argument", field: p.name,
				msg: fmt.Sprintf("%s: malformed escape in %q", p.name, truncate(v, 80))}
		}
		p.set = true
	}
	return nil
}

func unknownQueryParam(key string, params []queryParam) *apiError {
	key = truncate(key, 64)
	if len(params) == 0 {
		return &apiError{status: http.StatusBadRequest, code: "invalid_argument", field: key,
			msg: fmt.Sprintf("unknown query parameter %q (this route takes none)", key)}
	}
	names := make([]string, len(params))
	for i, p := range params {
		names[i] = p.name
	}
	return &apiError{status: http.StatusBadRequest, code: "invalid_argument", field: key,
		msg: fmt.Sprintf("unknown query parameter %q (use %s)", key, strings.Join(names, ", "))}
}

// bearerToken returns the token of an Authorization header value
// "Bearer <token>"; the scheme is case-insensitive (RFC 9110, section 11.1).
func bearerToken(h string) (string, bool) {
	const scheme = "bearer"
	if len(h) <= len(scheme) || h[len(scheme)] != ' ' || !equalFoldASCII(h[:len(scheme)], scheme) {
		return "", false
	}
	tok := strings.TrimLeft(h[len(scheme):], " ")
	return tok, tok != ""
}
