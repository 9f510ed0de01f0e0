package redis

import (
	"strings"
	"testing"
	"time"

	"github.com/ordersystem/ordersystem/internal/redact"
	"github.com/ordersystem/ordersystem/persistence"
)

func TestAddrParsing(t *testing.T) {
	for _, c := range []struct {
		addr, wantAddr, user, pass string
		db                         int
		tls                        bool
		redacted                   string
	}{
		{addr: "127.0.0.1:6379", wantAddr: "127.0.0.1:6379", redacted: "127.0.0.1:6379"},
		{addr: "redis.local:7000", wantAddr: "redis.local:7000", redacted: "redis.local:7000"},
		{addr: "[::1]:6380", wantAddr: "[::1]:6380", redacted: "[::1]:6380"},
		{addr: "redis://h:6379", wantAddr: "h:6379", redacted: "redis://h:6379"},
		{addr: "redis://user:pass@h:6390/2", wantAddr: "h:6390", user: "user", pass: "pass", db: 2, redacted: "redis://h:6390/2"},
		{addr: "redis://:only-pass@h:6390/0", wantAddr: "h:6390", pass: "only-pass", redacted: "redis://h:6390"},
		{addr: "rediss://u:p%40ss@secure.example:6380/1", wantAddr: "secure.example:6380", user: "u", pass: "p@ss", db: 1, tls: true, redacted: "rediss://secure.example:6380/1"},
		{addr: "redis://h", wantAddr: "h:6379", redacted: "redis://h"},
	} {
		o := Options{Addr: c.addr}
		o.setDefaults()
		if err := o.Validate(); err != nil {
			t.Fatalf("%s: %v", c.addr, err)
		}
		co, err := o.connOptions().ClientOptions()
		if err != nil {
			t.Fatalf("%s: %v", c.addr, err)
		}
		if co.Addr != c.wantAddr || co.Username != c.user || co.Password != c.pass || co.DB != c.db || (co.TLSConfig != nil) != c.tls {
			t.Fatalf("%s: addr=%s user=%q pass=%q db=%d tls=%v", c.addr, co.Addr, co.Username, co.Password, co.DB, co.TLSConfig != nil)
		}
		if c.tls && co.TLSConfig.ServerName != "secure.example" {
			t.Fatalf("%s: TLS server name %q", c.addr, co.TLSConfig.ServerName)
		}
		if co.DialTimeout != DefaultTimeout || co.ReadTimeout != DefaultTimeout || co.WriteTimeout != DefaultTimeout {
			t.Fatalf("%s: timeouts %s/%s/%s", c.addr, co.DialTimeout, co.ReadTimeout, co.WriteTimeout)
		}
		if got := redact.URL(c.addr); got != c.redacted {
			t.Fatalf("redact.URL(%s) = %q, want %q", c.addr, got, c.redacted)
		}
	}
}

func TestOptionsRefused(t *testing.T) {
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{Addr: "no-port"}, "Addr"},
		{Options{Addr: "h:notaport"}, "port"},
		{Options{Addr: "h:0"}, "port"},
		{Options{Addr: "http://h:1"}, "scheme"},
		{Options{Addr: "redis://user:topsecret@h:1/x"}, "database"},
		{Options{Addr: "redis://user:topsecret@h:bad"}, "Addr"},
		{Options{WaitReplicas: -1}, "WaitReplicas"},
		{Options{WaitReplicas: 1, WaitTimeout: 3 * time.Second}, "WaitTimeout"},
		{Options{MaxBatch: -1}, "MaxBatch"},
		{Options{Partitions: -1}, "Partitions"},
		{Options{Partitions: persistence.MaxPartitions + 1}, "Partitions"},
		{Options{Addr: "a:1,,b:2"}, "item 2 of the list is empty"},
		{Options{Addr: "redis://:topsecret@a:1/1,redis://:topsecret@b:2/1"}, "database 0 only"},
	} {
		c.o.setDefaults()
		err := c.o.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%+v: %v, want an error about %s", c.o, err, c.want)
		}
		if strings.Contains(err.Error(), "topsecret") {
			t.Fatalf("error shows the password: %v", err)
		}
	}
}

func TestDurabilityText(t *testing.T) {
	for _, c := range []struct{ aof, fsync, save, want string }{
		{"no", "everysec", "", "every acknowledged write is lost if redis-server restarts"},
		{"no", "everysec", "3600 1", "since the last snapshot are lost"},
		{"yes", "always", "", "fsynced before it is acknowledged"},
		{"yes", "everysec", "", "up to about 1 s"},
		{"yes", "no", "", "the OS decides"},
		{"", "", "", "unknown"},
	} {
		if got := durabilityText(c.aof, c.fsync, c.save); !strings.Contains(got, c.want) {
			t.Fatalf("appendonly=%s appendfsync=%s save=%q: %q, want it to say %q", c.aof, c.fsync, c.save, got, c.want)
		}
	}
}
