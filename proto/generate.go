// Package proto holds the protobuf schema of OrderSystem (order.proto) and
// the go:generate directive that regenerates orderpb from it with buf, run as
// a Go tool from the separate tools module, so no system protoc is needed.
package proto

//go:generate go tool -modfile=../tools/go.mod buf generate
