// Package archtest holds the architecture test: the dependency rules of
// DESIGN.md, checked on the real import graph by `go test ./...`.
package archtest
