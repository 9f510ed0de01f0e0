package node

import "net/url"

// redactURL hides the password of a URL (redis://user:secret@host) so that
// it never reaches a log line or an error message.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	} else if u.User.Username() != "" && u.Scheme == "nats" {
		u.User = url.User("xxxxx") // a NATS token
	}
	return u.String()
}
