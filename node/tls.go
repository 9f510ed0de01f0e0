package node

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// httpTLS is the HTTP server's TLS configuration, nil without --tls-cert.
func (c *Config) httpTLS() (*tls.Config, error) {
	if c.TLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert=%s --tls-key=%s: %w", c.TLSCert, c.TLSKey, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// peerTLS is mutual TLS for node-to-node gRPC: with --tls-ca, every node
// presents its --tls-cert and accepts only peers whose certificate the CA
// signed. nil, nil without --tls-ca.
func (c *Config) peerTLS() (server, client *tls.Config, err error) {
	if c.TLSCA == "" {
		return nil, nil, nil
	}
	pem, err := os.ReadFile(c.TLSCA)
	if err != nil {
		return nil, nil, fmt.Errorf("--tls-ca=%s: %w", c.TLSCA, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, nil, fmt.Errorf("--tls-ca=%s: no PEM certificate in the file", c.TLSCA)
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, nil, fmt.Errorf("--tls-cert=%s --tls-key=%s: %w", c.TLSCert, c.TLSKey, err)
	}
	server = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	client = &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}
	return server, client, nil
}
