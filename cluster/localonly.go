package cluster

import (
	"context"
	"errors"
	"net"

	"google.golang.org/grpc/credentials"
)

// errLocalOnly is what every handshake of a local-only node fails with.
var errLocalOnly = errors.New("this node is standalone: it accepts no node-to-node connections")

// refuseHandshakes are the transport credentials of a local-only node: they
// fail every handshake, in both directions, so that in the moment between
// protoactor's net.Listen and the node closing the listener nothing can
// talk to it (and it dials nobody).
type refuseHandshakes struct{}

var _ credentials.TransportCredentials = refuseHandshakes{}

func (refuseHandshakes) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errLocalOnly
}

func (refuseHandshakes) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errLocalOnly
}

func (refuseHandshakes) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "refuse"}
}

func (refuseHandshakes) Clone() credentials.TransportCredentials { return refuseHandshakes{} }

func (refuseHandshakes) OverrideServerName(string) error { return nil }
