package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/ordersystem/ordersystem/order"
	"github.com/ordersystem/ordersystem/proto/orderpb"
)

type createRequest struct {
	CustomerID string        `json:"customerId"`
	Items      []itemRequest `json:"items"`
}

type itemRequest struct {
	ProductID string      `json:"productId"`
	Name      string      `json:"name"`
	Quantity  json.Number `json:"quantity"`
	Price     json.Number `json:"price"`
}

// decodeJSON reads exactly one JSON value into v, refusing unknown fields and
// trailing data. An empty body leaves v alone when optional is set.
func decodeJSON(r *http.Request, v any, optional bool) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			if optional {
				return nil
			}
			return badRequest("request body is required (JSON)")
		}
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return badRequest("request body must hold exactly one JSON object")
	}
	return nil
}

// jsonError explains a decoding error in terms of the request's fields.
func jsonError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return err
	case errors.As(err, &se):
		return badRequest("malformed JSON at byte %d: %v", se.Offset, se)
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			return &apiError{status: http.StatusBadRequest, code: "invalid_argument", msg: fmt.Sprintf("request body must be a JSON object (got %s)", te.Value)}
		}
		return &apiError{status: http.StatusBadRequest, code: "invalid_argument", field: field,
			msg: fmt.Sprintf("%s: must be %s (got %s)", field, jsonTypeName(te.Type.Kind().String()), te.Value)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("malformed JSON: the body ends too early")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return badRequest("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	default:
		return badRequest("malformed JSON: %v", err)
	}
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	default:
		return "a " + kind
	}
}

func decodeCreate(r *http.Request) (*orderpb.CreateOrder, error) {
	var req createRequest
	if err := decodeJSON(r, &req, false); err != nil {
		return nil, err
	}
	out := &orderpb.CreateOrder{CustomerId: req.CustomerID, Items: make([]*orderpb.Item, 0, len(req.Items))}
	for i, it := range req.Items {
		q, err := quantity(it.Quantity)
		if err != nil {
			return nil, &apiError{status: http.StatusBadRequest, code: "invalid_argument", field: fmt.Sprintf("items[%d].quantity", i),
				msg: fmt.Sprintf("items[%d].quantity: %v", i, err)}
		}
		if it.Price == "" {
			return nil, &apiError{status: http.StatusBadRequest, code: "invalid_argument", field: fmt.Sprintf("items[%d].price", i),
				msg: fmt.Sprintf("items[%d].price: is required", i)}
		}
		p, err := order.ParseCents(it.Price.String())
		if err != nil {
			return nil, &apiError{status: http.StatusBadRequest, code: "invalid_argument", field: fmt.Sprintf("items[%d].price", i),
				msg: fmt.Sprintf("items[%d].price: %v", i, err)}
		}
		out.Items = append(out.Items, &orderpb.Item{ProductId: it.ProductID, Name: it.Name, Quantity: q, UnitPriceCents: int64(p)})
	}
	// Validate at the edge too, so that bad input never reaches an actor.
	if _, err := order.ValidateCreate(order.Create{CustomerID: req.CustomerID, Items: itemsFromProto(out.Items)}); err != nil {
		var ve *order.ValidationError
		if errors.As(err, &ve) {
			return nil, &apiError{status: http.StatusBadRequest, code: "invalid_argument", field: ve.Field, msg: ve.Error()}
		}
		return nil, err
	}
	return out, nil
}

func itemsFromProto(items []*orderpb.Item) []order.Item {
	out := make([]order.Item, len(items))
	for i, it := range items {
		out[i] = order.Item{ProductID: it.GetProductId(), Name: it.GetName(), Quantity: it.GetQuantity(), UnitPrice: order.Cents(it.GetUnitPriceCents())}
	}
	return out
}

func quantity(n json.Number) (int32, error) {
	if n == "" {
		return 0, errors.New("is required")
	}
	v, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("must be a whole number (got %s)", n)
	}
	if v < 1 || v > order.MaxQuantity || v > math.MaxInt32 {
		return 0, fmt.Errorf("must be between 1 and %d (got %d)", order.MaxQuantity, v)
	}
	return int32(v), nil
}

type payRequest struct {
	PaymentMethod string `json:"paymentMethod"`
}
type shipRequest struct {
	TrackingNumber string `json:"trackingNumber"`
}
type cancelRequest struct {
	Reason string `json:"reason"`
}
type emptyRequest struct{}

// decodeTransition reads the optional body of a transition.
func decodeTransition(op string, r *http.Request) (*orderpb.Command, error) {
	switch op {
	case "pay":
		var req payRequest
		if err := decodeJSON(r, &req, true); err != nil {
			return nil, err
		}
		return &orderpb.Command{Command: &orderpb.Command_Pay{Pay: &orderpb.PayOrder{PaymentMethod: req.PaymentMethod}}}, nil
	case "ship":
		var req shipRequest
		if err := decodeJSON(r, &req, true); err != nil {
			return nil, err
		}
		return &orderpb.Command{Command: &orderpb.Command_Ship{Ship: &orderpb.ShipOrder{TrackingNumber: req.TrackingNumber}}}, nil
	case "cancel":
		var req cancelRequest
		if err := decodeJSON(r, &req, true); err != nil {
			return nil, err
		}
		return &orderpb.Command{Command: &orderpb.Command_Cancel{Cancel: &orderpb.CancelOrder{Reason: req.Reason}}}, nil
	default: // deliver
		var req emptyRequest
		if err := decodeJSON(r, &req, true); err != nil {
			return nil, err
		}
		return &orderpb.Command{Command: &orderpb.Command_Deliver{Deliver: &orderpb.DeliverOrder{}}}, nil
	}
}
