// Package e2e holds the end-to-end tests of the web console (/ui/): Go
// starts the nodes (a three-member cluster on Redis, and a node with
// --api-token), and Node.js drives headless Chromium through them with
// playwright-core (console.test.mjs). They are behind the e2e build tag:
//
//	(cd e2e && npm ci) && go test -tags e2e -count=1 ./e2e/
//
// They need node, Debian's chromium (/usr/bin/chromium, or $E2E_CHROMIUM)
// and Redis (127.0.0.1:6379, or a private redis-server); without them they
// skip, and fail when CI is set. Screenshots go to e2e/screenshots/ (or
// $E2E_SCREENSHOTS).
package e2e
