package redact

import (
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for _, c := range []struct {
		in, want string
		secrets  []string // must not appear in the result
	}{
		// No credentials: unchanged.
		{in: "127.0.0.1:6379", want: "127.0.0.1:6379"},
		{in: "redis.local:7000", want: "redis.local:7000"},
		{in: "[::1]:6380", want: "[::1]:6380"},
		{in: "redis://h:6379", want: "redis://h:6379"},
		{in: "redis://h", want: "redis://h"},
		{in: "redis://h:6390/2", want: "redis://h:6390/2"},
		{in: "nats://127.0.0.1:4222", want: "nats://127.0.0.1:4222"},
		{in: "", want: ""},
		// Redis URLs (the forms persistence/redis has always printed).
		{in: "redis://user:pass@h:6390/2", want: "redis://h:6390/2", secrets: []string{"user", "pass"}},
		{in: "redis://:only-pass@h:6390/0", want: "redis://h:6390", secrets: []string{"only-pass"}},
		{in: "rediss://u:p%40ss@secure.example:6380/1", want: "rediss://secure.example:6380/1", secrets: []string{"p%40ss"}},
		{in: "redis://user:topsecret@h:1/x", want: "redis://h:1/x", secrets: []string{"topsecret"}},
		{in: "redis://h:6379/0?dial_timeout=3&protocol=2", want: "redis://h:6379"},
		{in: "redis://u:pw@h:6379/3?client_name=x#frag", want: "redis://h:6379/3", secrets: []string{"pw"}},
		// NATS URLs: user:pass, a token, lists (as persistence/nats prints them).
		{in: "nats://u:p@h:4222", want: "nats://h:4222", secrets: []string{"u:p"}},
		{in: "nats://tok3n@h:4222", want: "nats://h:4222", secrets: []string{"tok3n"}},
		{in: "nats://u:p@a:1,nats://b:2", want: "nats://a:1,nats://b:2", secrets: []string{"u:p"}},
		{in: "nats://u:p@a:1, nats://t0k@b:2", want: "nats://a:1,nats://b:2", secrets: []string{"u:p", "t0k"}},
		{in: "tls://u:p@secure:4443", want: "tls://secure:4443", secrets: []string{"u:p"}},
		// Malformed URLs (url.Parse refuses them and its error quotes them whole).
		{in: "redis://user:pa ss@host:6379", want: "redis://host:6379", secrets: []string{"pa ss", "user"}},
		{in: "redis://:secret@[bad", want: "redis://[bad", secrets: []string{"secret"}},
		{in: "redis://user:topsecret@h:bad", want: "redis://h:bad", secrets: []string{"topsecret"}},
		{in: "redis://u:p%zzw@h:6379", want: "redis://h:6379", secrets: []string{"p%zzw"}},
		{in: "nats://:s3cret@%zz:4222", want: "nats://%zz:4222", secrets: []string{"s3cret"}},
		// Passwords holding what separates the parts of an address.
		{in: "redis://u:p@ss@host:6379", want: "redis://host:6379", secrets: []string{"p@ss", "ss@"}},
		{in: "redis://:pa/ss@host:6379", want: "redis://host:6379", secrets: []string{"pa/ss", "pa"}},
		{in: "redis://:pa,ss@host:6379", want: "redis://host:6379", secrets: []string{"pa", "ss"}},
		{in: "redis://:pa?ss#x@host:6379", want: "redis://host:6379", secrets: []string{"pa", "ss"}},
		{in: "redis://u:p://w@host:6379", want: "redis://host:6379", secrets: []string{"u:p", "w@"}},
		{in: "nats://u:p,q@a:1,nats://v:w@b:2", want: "nats://a:1,nats://b:2", secrets: []string{"u:p", "q@", "v:w"}},
		// Scheme-less credentials.
		{in: "user:secret@host:6379", want: "host:6379", secrets: []string{"secret"}},
		{in: "u:p://w@host:6379", want: "host:6379", secrets: []string{"u:p", "w"}},
		// A password holding "@" and then "://" (not a list: no comma).
		{in: "redis://u:ab@cd://ef@host:6379", want: "redis://host:6379", secrets: []string{"ab", "cd", "ef"}},
		{in: "redis://u:@://x@host", want: "redis://host", secrets: []string{"x"}},
		// Lists with credentials in several elements.
		{in: "nats://u:p@a:1,nats://b:2,nats://v:w@c:3", want: "nats://a:1,nats://b:2,nats://c:3", secrets: []string{"u:p", "v:w"}},
		// An "@" after a host: more is removed, never the other way round.
		{in: "nats://a:1,u:p@b:2", want: "nats://b:2", secrets: []string{"u:p"}},
		{in: "redis://h:1/0?x=a@b", want: "redis://b"},
	} {
		got := URL(c.in)
		if got != c.want {
			t.Errorf("URL(%q) = %q, want %q", c.in, got, c.want)
		}
		for _, s := range c.secrets {
			if strings.Contains(got, s) {
				t.Errorf("URL(%q) = %q shows %q", c.in, got, s)
			}
		}
	}
}

// FuzzURL checks the promise on arbitrary input: no part of a user-info
// (here a marker between two copies of arbitrary text) survives, unless the
// user-info holds the one ambiguous sequence URL documents.
func FuzzURL(f *testing.F) {
	for _, s := range []string{"redis://", "nats://a:1,nats://", "tls://"} {
		for _, u := range []string{"u:p", "://@", "@://", "a@b://c", ",x", "@"} {
			f.Add(s, u)
		}
	}
	f.Fuzz(func(t *testing.T, prefix, userinfo string) {
		if strings.Contains(prefix, "@") || !strings.HasSuffix(prefix, "://") || strings.Contains(userinfo, ",") {
			return
		}
		const marker = "\x00SECRET\x00"
		in := prefix + userinfo + marker + userinfo + "@host:1"
		if got := URL(in); strings.Contains(got, marker) {
			t.Fatalf("URL(%q) = %q shows the user-info", in, got)
		}
	})
}
