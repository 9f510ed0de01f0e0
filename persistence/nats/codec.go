package nats

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"strconv"

	natsgo "github.com/nats-io/nats.go"

	"github.com/ordersystem/ordersystem/persistence"
)

// Message headers of journal messages.
const (
	hdrVersion = "Ordersystem-Version"
	hdrType    = "Ordersystem-Type"
	hdrCount   = "Ordersystem-Count"
)

// positionScale maps (stream sequence, record index) to a position:
// seq*positionScale + index. It is also the most records one append holds.
const positionScale = 1000

var idRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// validID refuses order ids that are not a safe subject token.
func validID(op, id string) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("%s: stream id %q: only letters, digits, _ and - are allowed: %w", op, id, persistence.ErrInvalidArgument)
	}
	return nil
}

// encodeAppend builds the one message of an append whose first record gets
// version first.
func encodeAppend(subject string, first uint64, records []persistence.Record) *natsgo.Msg {
	m := natsgo.NewMsg(subject)
	m.Header.Set(hdrVersion, strconv.FormatUint(first, 10))
	if len(records) == 1 {
		m.Header.Set(hdrType, records[0].Type)
		m.Data = records[0].Data
		return m
	}
	m.Header.Set(hdrCount, strconv.Itoa(len(records)))
	size := 0
	for _, r := range records {
		size += 2*binary.MaxVarintLen64 + len(r.Type) + len(r.Data)
	}
	buf := make([]byte, 0, size)
	for _, r := range records {
		buf = binary.AppendUvarint(buf, uint64(len(r.Type)))
		buf = append(buf, r.Type...)
		buf = binary.AppendUvarint(buf, uint64(len(r.Data)))
		buf = append(buf, r.Data...)
	}
	m.Data = buf
	return m
}

// msgHead reads the first version and record count of a journal message.
func msgHead(h natsgo.Header) (first uint64, count int, err error) {
	first, err = strconv.ParseUint(h.Get(hdrVersion), 10, 64)
	if err != nil || first == 0 {
		return 0, 0, fmt.Errorf("journal message without a valid %s header (%q)", hdrVersion, h.Get(hdrVersion))
	}
	count = 1
	if c := h.Get(hdrCount); c != "" {
		if count, err = strconv.Atoi(c); err != nil || count < 1 || count > positionScale {
			return 0, 0, fmt.Errorf("journal message with a bad %s header (%q)", hdrCount, c)
		}
	}
	return first, count, nil
}

// decodeMsg returns the records of one journal message of partition p.
func decodeMsg(streamID string, p int, seq uint64, h natsgo.Header, data []byte) ([]persistence.Record, error) {
	first, count, err := msgHead(h)
	if err != nil {
		return nil, fmt.Errorf("stream sequence %d: %w", seq, err)
	}
	if count == 1 && h.Get(hdrCount) == "" {
		t := h.Get(hdrType)
		if t == "" {
			return nil, fmt.Errorf("stream sequence %d: journal message without %s", seq, hdrType)
		}
		return []persistence.Record{{StreamID: streamID, Version: first, Partition: p, Position: seq * positionScale, Type: t, Data: data}}, nil
	}
	out := make([]persistence.Record, 0, count)
	rest := data
	for i := range count {
		t, r, err := chunk(rest)
		if err != nil {
			return nil, fmt.Errorf("stream sequence %d record %d: type: %w", seq, i, err)
		}
		d, r, err := chunk(r)
		if err != nil {
			return nil, fmt.Errorf("stream sequence %d record %d: data: %w", seq, i, err)
		}
		rest = r
		out = append(out, persistence.Record{
			StreamID:  streamID,
			Version:   first + uint64(i),
			Partition: p,
			Position:  seq*positionScale + uint64(i),
			Type:      string(t),
			Data:      d,
		})
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("stream sequence %d: %d bytes after the last record", seq, len(rest))
	}
	return out, nil
}

var errShort = errors.New("envelope truncated")

func chunk(b []byte) (val, rest []byte, err error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return nil, nil, errShort
	}
	return b[k : k+int(n) : k+int(n)], b[k+int(n):], nil
}

// kvKey maps any string to a valid key-value key: safe strings as they
// are, others base64url-encoded behind "=" (which safe strings never hold).
func kvKey(s string) string {
	if idRE.MatchString(s) {
		return s
	}
	return "=" + base64.RawURLEncoding.EncodeToString([]byte(s))
}
