package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The cluster secret comes from the flag, ORDERSYSTEM_CLUSTER_SECRET, or a
// file named by --cluster-secret-file or ORDERSYSTEM_CLUSTER_SECRET_FILE;
// no error shows it.
func TestClusterSecretSources(t *testing.T) {
	const secret = "s3cret-from-file-0123456789"
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	peers := []string{"--cluster", "--peers", "127.0.0.1:5001,127.0.0.1:5002"}
	cases := []struct {
		name      string
		args, env []string
		want, err string
	}{
		{"flag", []string{"--cluster-secret", "s3cret-from-flag-0123456789"}, nil, "s3cret-from-flag-0123456789", ""},
		{"environment", nil, []string{"ORDERSYSTEM_CLUSTER_SECRET=s3cret-from-env-0123456789"}, "s3cret-from-env-0123456789", ""},
		{"file flag", []string{"--cluster-secret-file", file}, nil, secret, ""},
		{"file from the environment", nil, []string{"ORDERSYSTEM_CLUSTER_SECRET_FILE=" + file}, secret, ""},
		{"missing file", []string{"--cluster-secret-file", filepath.Join(dir, "none")}, nil, "", "--cluster-secret-file=" + filepath.Join(dir, "none") + ": open"},
		{"empty file", []string{"--cluster-secret-file", empty}, nil, "", "--cluster-secret-file=" + empty + ": is empty"},
		{"file and secret", []string{"--cluster-secret-file", file}, []string{"ORDERSYSTEM_CLUSTER_SECRET=s3cret-from-env-0123456789"}, "", "set one of them"},
		{"short", []string{"--cluster-secret", "s3cret-short"}, nil, "", "--cluster-secret: is 12 bytes, must be at least 16"},
		{"spaces", []string{"--cluster-secret", "s3cret with spaces inside"}, nil, "", "--cluster-secret: must not contain spaces"},
		{"peers on every interface without a secret", append(peers, "--advertise-host", "10.0.0.1"), nil, "", "--advertise-host=10.0.0.1: with --peers"},
		{"peers on every interface with a secret", append(peers, "--advertise-host", "10.0.0.1", "--cluster-secret-file", file), nil, secret, ""},
		{"peers on loopback without a secret", peers, nil, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := loadConfig(c.args, c.env, &bytes.Buffer{})
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) || strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("error %v, want %q (and no secret in it)", err, c.err)
				}
				return
			}
			if err != nil || cfg.ClusterSecret != c.want {
				t.Fatalf("secret %q, %v; want %q", cfg.ClusterSecret, err, c.want)
			}
		})
	}
}
