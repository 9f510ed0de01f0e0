package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/internal/testservers"
)

// writeCA makes a CA and a certificate it signs for 127.0.0.1/localhost,
// as PEM files in dir; it returns their paths and the CA pool.
func writeCA(t *testing.T, dir string) (ca, cert, key string, pool *x509.CertPool) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ordersystem test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	nodeKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	nodeTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "node"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	nodeDER, err := x509.CreateCertificate(rand.Reader, nodeTmpl, caCert, &nodeKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(nodeKey)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pool = x509.NewCertPool()
	pool.AddCert(caCert)
	return write("ca.pem", "CERTIFICATE", caDER), write("node.pem", "CERTIFICATE", nodeDER), write("node.key", "EC PRIVATE KEY", keyDER), pool
}

// TestTLSBetweenTwoNodes: HTTPS on both nodes and mutual TLS between them;
// orders spread over both and answer through either.
func TestTLSBetweenTwoNodes(t *testing.T) {
	bin := binary(t)
	ca, cert, key, pool := writeCA(t, t.TempDir())
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	p1, p2 := testservers.FreePort(t), testservers.FreePort(t)
	peers := fmt.Sprintf("127.0.0.1:%d,127.0.0.1:%d", p1, p2)
	for i, port := range []int{p1, p2} {
		cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--http-host", "127.0.0.1", "--cluster", "--node-id", fmt.Sprint("t", i+1),
			"--peers", peers, "--remote-port", "0", "--tls-cert", cert, "--tls-key", key, "--tls-ca", ca, "--log-level", "warn")
		var logs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("node %d logs:\n%s", i+1, logs.String())
			}
		})
	}
	base := func(port int) string { return "https://127.0.0.1:" + strconv.Itoa(port) }
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := client.Get(base(p1) + "/")
		if err == nil {
			var info struct{ Members []struct{ ID string } }
			_ = json.NewDecoder(res.Body).Decode(&info)
			res.Body.Close()
			if len(info.Members) == 2 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the two TLS nodes did not see each other: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Plain HTTP is not served.
	if res, err := http.Get("http://127.0.0.1:" + strconv.Itoa(p1) + "/health/live"); err == nil && res.StatusCode == 200 {
		t.Fatal("plain HTTP answered on a TLS node")
	}
	owners := map[string]bool{}
	for range 12 {
		res, err := client.Post(base(p1)+"/orders", "application/json", bytes.NewBufferString(order1))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 201 {
			t.Fatalf("create over TLS: %d %s", res.StatusCode, body)
		}
		owners[res.Header.Get("X-Order-Owner")] = true
		var c struct{ OrderID string }
		_ = json.Unmarshal(body, &c)
		res, err = client.Get(base(p2) + "/orders/" + c.OrderID)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("order %s through the other node: %v %v", c.OrderID, res, err)
		}
		res.Body.Close()
	}
	if !owners["t1"] || !owners["t2"] {
		t.Fatalf("owners %v: orders should be served by both nodes over mutual TLS", owners)
	}
}
