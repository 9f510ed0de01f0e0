package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ordersystem/ordersystem/internal/loadgen"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestParseFlagsDefaults(t *testing.T) {
	setenv(t, "")
	opts, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := opts.cfg
	if strings.Join(c.Targets, ",") != "http://127.0.0.1:5000" || c.Concurrency != 64 || c.Duration != 10*time.Second ||
		c.Timeout != 5*time.Second || c.Pool != 1000 || c.Rate != 0 || c.Token != "" || opts.json ||
		len(opts.scenarios) != 1 || c.Mix.String() != "create=1,read=7,pay=1,ship=1" || c.Route != loadgen.RouteAny {
		t.Fatalf("defaults: %+v", opts)
	}
}

func TestParseFlags(t *testing.T) {
	setenv(t, "from-env")
	opts, err := parseFlags(strings.Fields("-targets http://127.0.0.1:5001,http://[::1]:5002 -compare live,create,read -concurrency 8 -rate 500 -duration 3s -json -mix read=1,pay=2"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(opts.cfg.Targets) != 2 || strings.Join(opts.scenarios, ",") != "live,create,read" || opts.cfg.Rate != 500 ||
		opts.cfg.Concurrency != 8 || opts.cfg.Duration != 3*time.Second || !opts.json || opts.cfg.Token != "from-env" ||
		opts.cfg.Mix.String() != "read=1,pay=2" {
		t.Fatalf("parsed: %+v", opts)
	}
	opts, err = parseFlags(strings.Fields("-targets http://127.0.0.1:5201,http://127.0.0.1:5202 -compare read,history -route other"), io.Discard)
	if err != nil || opts.cfg.Route != loadgen.RouteOther {
		t.Fatalf("-route other: %v %+v", err, opts.cfg)
	}
	opts, err = parseFlags([]string{"-token", "from-flag"}, io.Discard)
	if err != nil || opts.cfg.Token != "from-flag" {
		t.Fatalf("-token beats the environment: %v %q", err, opts.cfg.Token)
	}
}

func TestParseFlagsErrors(t *testing.T) {
	setenv(t, "")
	for _, tc := range []struct{ args, want string }{
		{"-targets http://10.1.2.3:5000", "-allow-remote"},
		{"-targets http://example.com", "not a loopback address"},
		{"-duration 11m", "-duration 11m0s"},
		{"-mix create=1,fly=2", `"fly=2"`},
		{"-scenario bogus", `-scenario "bogus"`},
		{"-compare live", "at least two"},
		{"-compare live,bogus", `"bogus"`},
		{"-concurrency 0", "-concurrency 0"},
		{"-route nearest -scenario read -targets http://127.0.0.1:1,http://127.0.0.1:2", `-route "nearest"`},
		{"-route owner -scenario read", "-route owner: needs at least 2 -targets"},
		{"-route other -compare read,live -targets http://127.0.0.1:1,http://127.0.0.1:2", "-route other: only for the read and history scenarios, not live"},
		{"stray", "unexpected argument"},
		{"-nosuchflag", "not defined"},
	} {
		_, err := parseFlags(strings.Fields(tc.args), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseFlags(%s) = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
	if _, err := parseFlags([]string{"-targets", "http://10.1.2.3:5000", "-allow-remote"}, io.Discard); err != nil {
		t.Errorf("-allow-remote did not allow a remote target: %v", err)
	}
	var usage bytes.Buffer
	if _, err := parseFlags([]string{"-h"}, &usage); !errors.Is(err, flag.ErrHelp) || !strings.Contains(usage.String(), "-compare") {
		t.Errorf("-h: %v\n%s", err, usage.String())
	}
}

// setenv makes ORDERSYSTEM_API_TOKEN read as token for the test.
func setenv(t *testing.T, token string) {
	old := getenv
	getenv = func(k string) string {
		if k == "ORDERSYSTEM_API_TOKEN" {
			return token
		}
		return ""
	}
	t.Cleanup(func() { getenv = old })
}

// tinyServer answers 200 to the probes and 201 to creates, counting them.
func tinyServer(t *testing.T, createStatus int) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health/live", func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Write([]byte(`{"status":"ok"}`))
	})
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		id := "o-" + time.Now().Format("150405.000000000")
		w.Header().Set("Location", "/orders/"+id)
		w.WriteHeader(createStatus)
		w.Write([]byte(`{"orderId":"` + id + `"}`))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestRunCompare(t *testing.T) {
	srv, n := tinyServer(t, http.StatusCreated)
	setenv(t, "")
	opts, err := parseFlags([]string{"-targets", srv.URL, "-compare", "live,create", "-concurrency", "4", "-requests", "200", "-duration", "10s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(context.Background(), opts, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	t.Logf("output:\n%s", out.String())
	var lines []string // scenario and ratio lines; indented notes left out
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if !strings.HasPrefix(l, " ") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "live ") || !strings.HasPrefix(lines[1], "create ") || !strings.HasPrefix(lines[2], "create/live ") {
		t.Fatalf("want a line per scenario and a ratio line, got:\n%s", out.String())
	}
	if !strings.Contains(lines[0], "requests=200 ok=200") || !strings.Contains(lines[1], "status=201:200") {
		t.Fatalf("counts wrong:\n%s", out.String())
	}
	if n.Load() != 400 {
		t.Fatalf("server saw %d requests, want 400", n.Load())
	}

	opts.json = true
	out.Reset()
	if err := run(context.Background(), opts, &out); err != nil {
		t.Fatal(err)
	}
	var res loadgen.Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("JSON: %v\n%s", err, out.String())
	}
	if len(res.Scenarios) != 2 || len(res.Ratios) != 1 || res.Ratios[0].Name != "create/live" || !res.Ratios[0].Defined {
		t.Fatalf("JSON result: %s", out.String())
	}
}

func TestRunFailsWithoutSuccess(t *testing.T) {
	srv, _ := tinyServer(t, http.StatusServiceUnavailable)
	setenv(t, "")
	opts, err := parseFlags([]string{"-targets", srv.URL, "-scenario", "create", "-concurrency", "2", "-requests", "10"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = run(context.Background(), opts, &out)
	if !errors.Is(err, loadgen.ErrNoSuccess) || !strings.Contains(err.Error(), "create") {
		t.Fatalf("run = %v, want ErrNoSuccess naming create", err)
	}
	if !strings.Contains(out.String(), "status=503:10") {
		t.Fatalf("report still printed? %s", out.String())
	}
}
