package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonReader reads the small, fixed request bodies of the API from a byte
// slice, stricter than encoding/json: a key must match exactly (no case
// folding) and appear once, invalid UTF-8 in a string is kept as sent (so
// that the domain refuses it by field instead of storing U+FFFD), and a
// value of the wrong type is refused at its first byte, without reading it.
// Every error is an *apiError naming the field where there is one.
type jsonReader struct {
	b []byte
	i int
}

// maxKeys is the most keys one object of the API has (an item has four).
const maxKeys = 8

func (r *jsonReader) ws() {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// end reports whether only whitespace is left.
func (r *jsonReader) end() bool {
	r.ws()
	return r.i == len(r.b)
}

func (r *jsonReader) syntax(format string, args ...any) *apiError {
	return badRequest("malformed JSON at byte %d: %s", r.i, fmt.Sprintf(format, args...))
}

func (r *jsonReader) unexpected(what string) *apiError {
	if r.i >= len(r.b) {
		return badRequest("malformed JSON: the body ends too early (in %s)", what)
	}
	return r.syntax("unexpected %s in %s", quoteByte(r.b[r.i]), what)
}

func quoteByte(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return "'" + string(rune(c)) + "'"
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

// kind names the JSON value that starts at the next byte, for type errors.
func (r *jsonReader) kind() string {
	r.ws()
	if r.i >= len(r.b) {
		return "nothing"
	}
	switch c := r.b[r.i]; {
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == '"':
		return "string"
	case c == 't' || c == 'f':
		return "bool"
	case c == 'n':
		return "null"
	case c == '-' || ('0' <= c && c <= '9'):
		return "number"
	}
	return "invalid JSON"
}

// typeError refuses the value at the next byte, which is not of the field's
// type; a byte that starts no JSON value is a syntax error instead.
func (r *jsonReader) typeError(field, want string) *apiError {
	got := r.kind()
	if got == "invalid JSON" || got == "nothing" {
		return r.unexpected(field)
	}
	if field == "" {
		return badRequest("request body must be a JSON object (got %s)", got)
	}
	return &apiError{status: http.StatusBadRequest, code: "invalid_argument", field: field,
		msg: fmt.Sprintf("%s: must be %s (got %s)", field, want, got)}
}

// null consumes a JSON null if one is next.
func (r *jsonReader) null() (bool, error) {
	r.ws()
	if r.i < len(r.b) && r.b[r.i] == 'n' {
		if len(r.b)-r.i < 4 || string(r.b[r.i:r.i+4]) != "null" {
			return false, r.unexpected("a value")
		}
		r.i += 4
		return true, nil
	}
	return false, nil
}

// object reads the '{' of an object at path (the field it is the value of,
// "" for the body itself).
func (r *jsonReader) object(path string) error {
	r.ws()
	if r.i >= len(r.b) || r.b[r.i] != '{' {
		return r.typeError(path, "an object")
	}
	r.i++
	return nil
}

// key reads the next key of the object at path and its ':', and returns
// its index in keys; ok is false at the closing '}'. seen remembers the keys
// read so far, so that a repeated key is refused. A key that is not in keys
// is refused, with a hint when it differs only in case.
func (r *jsonReader) key(path string, keys []string, seen *[maxKeys]bool, first bool) (k int, ok bool, err error) {
	r.ws()
	if r.i < len(r.b) && r.b[r.i] == '}' && first {
		r.i++
		return 0, false, nil
	}
	if !first {
		if r.i >= len(r.b) {
			return 0, false, r.unexpected("an object")
		}
		switch r.b[r.i] {
		case '}':
			r.i++
			return 0, false, nil
		case ',':
			r.i++
			r.ws()
		default:
			return 0, false, r.unexpected("an object (want ',' or '}')")
		}
	}
	if r.i >= len(r.b) || r.b[r.i] != '"' {
		return 0, false, r.unexpected("an object (want a key)")
	}
	name, err := r.stringBytes("")
	if err != nil {
		return 0, false, err
	}
	r.ws()
	if r.i >= len(r.b) || r.b[r.i] != ':' {
		return 0, false, r.unexpected("an object (want ':')")
	}
	r.i++
	for k, want := range keys {
		if string(name) != want {
			continue
		}
		if seen[k] {
			f := fieldPath(path, want)
			return 0, false, &apiError{status: http.StatusBadRequest, code: "invalid_argument", field: f,
				msg: fmt.Sprintf("%s: duplicate key (each key may appear once)", f)}
		}
		seen[k] = true
		return k, true, nil
	}
	f := fieldPath(path, truncate(string(name), 64))
	hint := "no field is accepted here"
	if len(keys) > 0 {
		hint = "the fields are " + strings.Join(keys, ", ")
	}
	for _, want := range keys {
		if equalFoldASCII(string(name), want) {
			hint = fmt.Sprintf("field names are case-sensitive: did you mean %q?", want)
			break
		}
	}
	return 0, false, &apiError{status: http.StatusBadRequest, code: "invalid_argument", field: f, msg: fmt.Sprintf("unknown field %q (%s)", f, hint)}
}

func fieldPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// array reads the '[' of the array at field.
func (r *jsonReader) array(field string) error {
	r.ws()
	if r.i >= len(r.b) || r.b[r.i] != '[' {
		return r.typeError(field, "an array")
	}
	r.i++
	return nil
}

// elem reports whether another element follows in an array (consuming the
// ',' before it), or consumes the closing ']'.
func (r *jsonReader) elem(field string, first bool) (bool, error) {
	r.ws()
	if r.i >= len(r.b) {
		return false, r.unexpected(field)
	}
	switch c := r.b[r.i]; {
	case c == ']':
		r.i++
		return false, nil
	case first:
		return true, nil
	case c == ',':
		r.i++
		return true, nil
	}
	return false, r.unexpected(field + " (want ',' or ']')")
}

// str reads the string value of field; null reads as "".
func (r *jsonReader) str(field string) (string, error) {
	if isNull, err := r.null(); isNull || err != nil {
		return "", err
	}
	if r.i >= len(r.b) || r.b[r.i] != '"' {
		return "", r.typeError(field, "a string")
	}
	b, err := r.stringBytes(field)
	return string(b), err
}

// number reads the value of a numeric field as its text: a JSON number, or
// a string holding one (encoding/json's json.Number took both); null and
// absent read as "".
func (r *jsonReader) number(field string) (string, error) {
	if isNull, err := r.null(); isNull || err != nil {
		return "", err
	}
	if r.i < len(r.b) && r.b[r.i] == '"' {
		b, err := r.stringBytes(field)
		if err != nil {
			return "", err
		}
		if n := numberLen(b); n == 0 || n != len(b) {
			return "", &apiError{status: http.StatusBadRequest, code: "invalid_argument", field: field,
				msg: fmt.Sprintf("%s: must be a number (got the string %q)", field, truncate(string(b), 40))}
		}
		return string(b), nil
	}
	n := numberLen(r.b[r.i:])
	if n == 0 {
		if r.kind() == "number" { // a '-' or a digit that starts no JSON number
			return "", r.unexpected(field)
		}
		return "", r.typeError(field, "a number")
	}
	s := string(r.b[r.i : r.i+n])
	r.i += n
	if r.i < len(r.b) && !isDelimiter(r.b[r.i]) {
		return "", r.unexpected(field)
	}
	return s, nil
}

func isDelimiter(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', ',', '}', ']':
		return true
	}
	return false
}

// numberLen returns the length of the JSON number at the start of b, or 0
// when none starts there: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func numberLen(b []byte) int {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	default:
		return 0
	}
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		if i == start {
			return 0
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		start := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		if i == start {
			return 0
		}
	}
	return i
}

// stringBytes reads the string that starts at r.i (a '"') of field ("" for
// a key) and returns its content, which aliases the body when it holds no
// escape. Bytes that are not UTF-8 are kept as they are. A raw control
// character (not JSON) and a \u escape of a lone surrogate (not UTF-8) are
// refused, naming the field.
func (r *jsonReader) stringBytes(field string) ([]byte, error) {
	r.i++ // the opening quote
	start := r.i
	for r.i < len(r.b) {
		c := r.b[r.i]
		switch {
		case c == '"':
			r.i++
			return r.b[start : r.i-1], nil
		case c == '\\':
			return r.escapedString(field, start)
		case c < 0x20:
			return nil, r.controlInString(field, c)
		}
		r.i++
	}
	return nil, r.unexpected("a string")
}

func (r *jsonReader) controlInString(field string, c byte) *apiError {
	if field == "" {
		return r.syntax("%U in a key", rune(c))
	}
	e := r.syntax("%s: %U in a string must be escaped (and is refused in text fields)", field, rune(c))
	e.field = field
	return e
}

// escapedString continues stringBytes from the first backslash, copying.
func (r *jsonReader) escapedString(field string, start int) ([]byte, error) {
	out := make([]byte, 0, r.i-start+16)
	out = append(out, r.b[start:r.i]...)
	for r.i < len(r.b) {
		c := r.b[r.i]
		switch {
		case c == '"':
			r.i++
			return out, nil
		case c < 0x20:
			return nil, r.controlInString(field, c)
		case c != '\\':
			out = append(out, c)
			r.i++
			continue
		}
		if r.i+1 >= len(r.b) {
			return nil, r.unexpected("a string")
		}
		esc := r.b[r.i+1]
		r.i += 2
		switch esc {
		case '"', '\\', '/':
			out = append(out, esc)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r1, ok := r.hex4()
			if !ok {
				return nil, r.syntax(`bad \u escape in a string`)
			}
			if utf16.IsSurrogate(r1) {
				var r2 rune = -1
				if r.i+1 < len(r.b) && r.b[r.i] == '\\' && r.b[r.i+1] == 'u' {
					r.i += 2
					if r2, ok = r.hex4(); !ok {
						return nil, r.syntax(`bad \u escape in a string`)
					}
				}
				r1 = utf16.DecodeRune(r1, r2)
				if r1 == utf8.RuneError {
					return nil, r.loneSurrogate(field)
				}
			}
			out = utf8.AppendRune(out, r1)
		default:
			r.i--
			return nil, r.syntax(`bad escape \%c in a string`, esc)
		}
	}
	return nil, r.unexpected("a string")
}

func (r *jsonReader) loneSurrogate(field string) *apiError {
	if field == "" {
		return r.syntax(`a \u escape in a key is a lone UTF-16 surrogate`)
	}
	return &apiError{status: http.StatusBadRequest, code: "invalid_argument", field: field,
		msg: fmt.Sprintf(`%s: must be valid UTF-8 (a \u escape before byte %d is a lone UTF-16 surrogate)`, field, r.i)}
}

// hex4 reads the four hex digits of a \u escape.
func (r *jsonReader) hex4() (rune, bool) {
	if len(r.b)-r.i < 4 {
		return 0, false
	}
	var v rune
	for _, c := range r.b[r.i : r.i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		v = v<<4 | rune(c)
	}
	r.i += 4
	return v, true
}
