package redact

import "strings"

// URL returns addr without credentials, for messages:
//
//   - Each "@" ends a user-info (a user, a password, a NATS token) and
//     everything of it is removed, the "@" included. The user-info began
//     right after the last "<scheme>://" that opens an address (at the
//     start, or after a comma) since the previous "@"; without one, right
//     after the previous "@" (a password holding "@"), or at the start (a
//     scheme-less user:pass@host:port). A user-info may thus hold any
//     character, commas, slashes, "://" and "@" included: it is removed
//     before the address is split into a list, and nothing here parses the
//     address as a URL, so a malformed one is redacted like any other.
//   - Then each comma-separated element is trimmed and loses its query
//     ("?...") and fragment ("#..."), and a path that is only "/" or "/0"
//     (Redis' default database) is dropped.
//
// An address without "@" has no user-info and keeps its host and port as
// given: host:port, [::1]:6380 and redis://h:6379/2 come back unchanged. An
// "@" after a host (in a query, or a scheme-less element of a list) makes
// URL remove more than the user-info, never less. The one input it cannot
// tell from a list is a password that holds an "@" followed by
// ",<scheme>://": the part between the two may show.
func URL(addr string) string {
	var b strings.Builder
	start := 0 // addr[:start] is written or removed
	for {
		at := strings.IndexByte(addr[start:], '@')
		if at < 0 {
			break
		}
		at += start
		b.WriteString(addr[start : start+opening(addr[start:at], start == 0)])
		start = at + 1
	}
	b.WriteString(addr[start:])
	parts := strings.Split(b.String(), ",")
	for i, p := range parts {
		parts[i] = tidy(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}

// opening returns the length of what precedes the user-info in s, the text
// between the previous "@" (or the start, if first) and the next one: up to
// the last "<scheme>://" that opens an address, else nothing.
func opening(s string, first bool) int {
	n := 0
	for i := 0; ; {
		j := strings.Index(s[i:], "://")
		if j < 0 {
			return n
		}
		j += i
		k := j
		for k > 0 && isSchemeChar(s[k-1]) {
			k--
		}
		if k < j && isLetter(s[k]) {
			before := strings.TrimRight(s[:k], " \t")
			if (first && before == "") || strings.HasSuffix(before, ",") {
				n = j + len("://")
			}
		}
		i = j + len("://")
	}
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

func isSchemeChar(c byte) bool {
	return isLetter(c) || '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'
}

// tidy drops the query, the fragment and an empty or "/0" path of one
// credential-free address.
func tidy(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	scheme, rest, isURL := strings.Cut(p, "://")
	if !isURL {
		return p
	}
	if host, path, ok := strings.Cut(rest, "/"); ok && (path == "" || path == "0") {
		rest = host
	}
	return scheme + "://" + rest
}
