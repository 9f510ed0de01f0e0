package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	httpapi "github.com/ordersystem/ordersystem/http"
)

// The console is served at /ui/ from the binary, without the API token (its
// files hold no data), with a policy that keeps it to its own origin; the
// API it calls still requires the token.
func TestConsoleIsServed(t *testing.T) {
	srv, _ := newFakeAPI(t, func(c *httpapi.Config) { c.APIToken = testToken })
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string) (*http.Response, string) {
		t.Helper()
		res, err := noRedirect.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}

	res, _ := get("/ui")
	if res.StatusCode != http.StatusMovedPermanently || res.Header.Get("Location") != "/ui/" {
		t.Errorf("GET /ui: %d, Location %q; want 301 to /ui/", res.StatusCode, res.Header.Get("Location"))
	}
	for _, tc := range []struct{ path, ctype, contains string }{
		{"/ui/", "text/html; charset=utf-8", `<script type="module" src="app.js">`},
		{"/ui/app.js", "text/javascript; charset=utf-8", "import "},
		{"/ui/sse.js", "text/javascript; charset=utf-8", "export class SSEParser"},
		{"/ui/style.css", "text/css; charset=utf-8", "@media"},
	} {
		res, body := get(tc.path)
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d %s", tc.path, res.StatusCode, body)
			continue
		}
		if got := res.Header.Get("Content-Type"); got != tc.ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", tc.path, got, tc.ctype)
		}
		if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self'") || !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", tc.path, csp)
		}
		if !strings.Contains(body, tc.contains) {
			t.Errorf("GET %s: body has no %q", tc.path, tc.contains)
		}
	}
	// Nothing in the page comes from another origin.
	for _, f := range []string{"/ui/", "/ui/app.js", "/ui/api.js", "/ui/sse.js", "/ui/fold.js", "/ui/style.css"} {
		if _, body := get(f); strings.Contains(body, "http://") || strings.Contains(body, "https://") || strings.Contains(body, "//cdn") {
			t.Errorf("%s names another origin", f)
		}
	}
	for _, path := range []string{"/ui/nope.js", "/ui/..%2fserver.go", "/ui/ui%2fapp.js"} {
		res, body := get(path)
		var e struct{ Code string }
		_ = json.Unmarshal([]byte(body), &e)
		if res.StatusCode != http.StatusNotFound || e.Code != "not_found" {
			t.Errorf("GET %s: %d %s, want 404 not_found", path, res.StatusCode, body)
		}
	}
	if res, body := get("/orders"); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /orders without the token: %d %s, want 401", res.StatusCode, body)
	}
}
