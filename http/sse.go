package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ordersystem/ordersystem/feed"
	"github.com/ordersystem/ordersystem/proto/orderpb"
)

// Server-Sent Events: GET /events (every event, from a position, then
// live) and GET /orders/{id}/events (one order's history, then live). Each
// message is
//
//	id: <position to resume from>
//	event: <event type>
//	data: <the event as JSON, as in /orders/{id}/history>
//
// A client resumes with the Last-Event-ID header (what EventSource sends
// when it reconnects) or ?from=<id>; on /events, from=0 is the beginning of
// the journal and no position means live events only. Comment lines keep
// idle streams open through proxies. A subscriber that falls behind by
// more than its buffer gets "event: dropped" with the reason and the stream
// ends; it may resume from the last id it got.

// EncodeEvent is the JSON of an event in the feeds and in the history.
func EncodeEvent(e *orderpb.Event) []byte {
	b, _ := json.Marshal(toEventJSON(e)) // plain struct: cannot fail
	return b
}

// sseWriteTimeout bounds one write to a subscriber: one that does not read
// for that long is dropped.
const sseWriteTimeout = 30 * time.Second

// sseStream is one open event stream.
type sseStream struct {
	c  echo.Context
	rc *http.ResponseController
	w  *bufio.Writer
}

// openStream answers the headers of an event stream. The server's write
// timeout (meant for one answer) is lifted; each write gets its own.
func (a *api) openStream(c echo.Context) *sseStream {
	res := c.Response()
	h := res.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	res.WriteHeader(http.StatusOK)
	s := &sseStream{c: c, rc: http.NewResponseController(res.Writer), w: bufio.NewWriterSize(res, 8<<10)}
	_ = s.rc.SetWriteDeadline(time.Time{})
	_ = s.rc.SetReadDeadline(time.Time{})
	_, _ = s.w.WriteString(": ordersystem event stream\n\n")
	_ = s.flush()
	return s
}

func (s *sseStream) event(id, typ string, data []byte) {
	_, _ = s.w.WriteString("id: ")
	_, _ = s.w.WriteString(id)
	_, _ = s.w.WriteString("\nevent: ")
	_, _ = s.w.WriteString(typ)
	_, _ = s.w.WriteString("\ndata: ")
	_, _ = s.w.Write(data)
	_, _ = s.w.WriteString("\n\n")
}

func (s *sseStream) comment(text string) {
	_, _ = s.w.WriteString(": ")
	_, _ = s.w.WriteString(text)
	_, _ = s.w.WriteString("\n\n")
}

// flush sends what is buffered, within sseWriteTimeout.
func (s *sseStream) flush() error {
	_ = s.rc.SetWriteDeadline(time.Now().Add(sseWriteTimeout))
	if err := s.w.Flush(); err != nil {
		return err
	}
	return s.rc.Flush()
}

// dropped tells the subscriber why its stream ends.
func (s *sseStream) dropped(reason string) {
	b, _ := json.Marshal(map[string]string{"reason": reason})
	_, _ = s.w.WriteString("event: dropped\ndata: ")
	_, _ = s.w.Write(b)
	_, _ = s.w.WriteString("\n\n")
	_ = s.flush()
}

// resumeFrom is ?from= or else Last-Event-ID ("" for neither).
func resumeFrom(c echo.Context) (string, error) {
	q := [...]queryParam{{name: "from"}}
	if err := parseQuery(c.Request().URL.RawQuery, q[:]); err != nil {
		return "", err
	}
	if q[0].set {
		return q[0].value, nil
	}
	return c.Request().Header.Get("Last-Event-ID"), nil
}

func (a *api) subscribeError(err error) error {
	if errors.Is(err, feed.ErrTooMany) {
		return &apiError{status: http.StatusServiceUnavailable, code: "overloaded", msg: err.Error() + "; retry shortly or use another node"}
	}
	return &apiError{status: http.StatusServiceUnavailable, code: "unavailable", msg: "event feed unavailable: " + err.Error()}
}

// events serves GET /events.
func (a *api) events(c echo.Context) error {
	hub := a.cfg.Events
	if hub == nil {
		return &apiError{status: http.StatusNotFound, code: "not_found", msg: "this node serves no event feed"}
	}
	from, err := resumeFrom(c)
	if err != nil {
		return err
	}
	var cur feed.Cursor
	if from != "" {
		if cur, err = feed.ParseCursor(from, hub.Partitions()); err != nil {
			return &apiError{status: http.StatusBadRequest, code: "invalid_argument", field: "from",
				msg: fmt.Sprintf("from / Last-Event-ID: %v (got %q; use an id this feed sent, or 0 for the beginning)", err, truncate(from, 80))}
		}
	}
	ctx := c.Request().Context()
	sub, live, err := hub.Subscribe(ctx, "")
	if err != nil {
		return a.subscribeError(err)
	}
	defer sub.Close()
	s := a.openStream(c)
	if cur == nil {
		cur = live
	} else {
		// Catch up from the client's position to where the live events
		// start, flushing as the buffer fills.
		err := hub.CatchUp(ctx, cur, live, "", func(ev feed.Event) error {
			cur[ev.Partition] = ev.Position
			s.event(cur.String(), ev.Type, ev.JSON)
			if s.w.Buffered() > 4<<10 {
				return s.flush()
			}
			return nil
		})
		if err != nil {
			if ctx.Err() == nil {
				s.dropped("catching up failed: " + err.Error())
			}
			return nil
		}
	}
	_ = s.flush()
	return a.pump(ctx, s, sub, func(ev feed.Event) bool {
		if ev.Position <= cur[ev.Partition] {
			return false // had it from the catch-up
		}
		cur[ev.Partition] = ev.Position
		s.event(cur.String(), ev.Type, ev.JSON)
		return true
	})
}

// orderEvents serves GET /orders/{id}/events: the history (after the
// version of Last-Event-ID or ?from=), then the live events; ids are
// versions.
func (a *api) orderEvents(c echo.Context) error {
	hub := a.cfg.Events
	if hub == nil {
		return &apiError{status: http.StatusNotFound, code: "not_found", msg: "this node serves no event feed"}
	}
	id, err := orderID(c)
	if err != nil {
		return err
	}
	from, err := resumeFrom(c)
	if err != nil {
		return err
	}
	var last uint64
	if from != "" {
		if last, err = strconv.ParseUint(from, 10, 64); err != nil {
			return &apiError{status: http.StatusBadRequest, code: "invalid_argument", field: "from",
				msg: fmt.Sprintf("from / Last-Event-ID: must be a version of the order (got %q)", truncate(from, 80))}
		}
	}
	ctx := c.Request().Context()
	// Subscribe first, then read the history: an event appended in between
	// comes live, and is skipped if the history had it.
	sub, _, err := hub.Subscribe(ctx, id)
	if err != nil {
		return a.subscribeError(err)
	}
	defer sub.Close()
	reply, err := a.call(c, id, func(ctx context.Context) (*orderpb.Reply, error) { return a.cfg.Orders.History(ctx, id) })
	if err != nil {
		return err
	}
	s := a.openStream(c)
	for _, e := range reply.GetHistory() {
		if e.GetVersion() <= last {
			continue
		}
		last = e.GetVersion()
		j := toEventJSON(e)
		b, _ := json.Marshal(j)
		s.event(strconv.FormatUint(last, 10), j.Type, b)
	}
	_ = s.flush()
	return a.pump(ctx, s, sub, func(ev feed.Event) bool {
		if ev.Version <= last {
			return false
		}
		last = ev.Version
		s.event(strconv.FormatUint(last, 10), ev.Type, ev.JSON)
		return true
	})
}

// pump writes live events until the client leaves or the subscription
// ends (then it says why), with a heartbeat on idle streams. write returns
// whether it wrote the event.
func (a *api) pump(ctx context.Context, s *sseStream, sub *feed.Sub, write func(feed.Event) bool) error {
	beat := time.NewTicker(a.cfg.EventsHeartbeat)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sub.Done():
			// Deliver what was queued before the end, then say why.
			for {
				select {
				case ev := <-sub.Events():
					write(ev)
					continue
				default:
				}
				break
			}
			if err := sub.Err(); err != nil {
				s.dropped(err.Error())
			}
			return nil
		case <-beat.C:
			s.comment("heartbeat")
			if s.flush() != nil {
				return nil
			}
		case ev := <-sub.Events():
			write(ev)
			// Send everything queued in one flush.
			for more := true; more; {
				select {
				case ev := <-sub.Events():
					write(ev)
				default:
					more = false
				}
			}
			if s.flush() != nil {
				return nil
			}
		}
	}
}
