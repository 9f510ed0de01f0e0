package httpapi

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"

	"github.com/labstack/echo/v4"
)

// consoleFiles are the web console's assets (plain HTML, CSS and JavaScript
// modules, no build step), served at /ui/ by every node. They load nothing
// from elsewhere: the page talks to the node that served it, through the same
// API as any client.
//
//go:embed ui
var consoleFiles embed.FS

// consolePolicy keeps the page to its own origin: scripts, styles and
// connections to the node that served it, no frames, no forms posted away.
const consolePolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// isConsole reports whether a path is the console's: its assets are served
// without the API token (they hold no data; the page asks for the token when
// the API answers 401).
func isConsole(p string) bool { return p == "/ui" || strings.HasPrefix(p, "/ui/") }

// consoleRoutes registers GET /ui (a redirect to /ui/), /ui/ (the page) and
// /ui/{file} (its assets).
func (a *api) consoleRoutes(e *echo.Echo) {
	e.GET("/ui", func(c echo.Context) error { return c.Redirect(http.StatusMovedPermanently, "/ui/") })
	e.GET("/ui/", func(c echo.Context) error { return serveConsoleFile(c, "index.html") })
	e.GET("/ui/:file", func(c echo.Context) error { return serveConsoleFile(c, c.Param("file")) })
}

// serveConsoleFile answers one of the console's files, or 404.
func serveConsoleFile(c echo.Context, name string) error {
	b, err := fs.ReadFile(consoleFiles, "ui/"+name)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && strings.ContainsAny(name, "/\\")) {
		return &apiError{status: http.StatusNotFound, code: "not_found", msg: fmt.Sprintf("no console file %q", truncate(name, 80))}
	}
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set("Content-Security-Policy", consolePolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	return c.Blob(http.StatusOK, consoleType(name), b)
}

// consoleType is the Content-Type of a console file, by its extension.
func consoleType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	default:
		return "application/octet-stream"
	}
}
