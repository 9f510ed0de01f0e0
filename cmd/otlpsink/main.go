// Command otlpsink is an OTLP/HTTP trace receiver that counts what it
// receives and keeps nothing: the stand-in collector of scripts/tracing.sh,
// so that the cost of exporting spans can be measured without a real
// collector. POST /v1/traces takes an ExportTraceServiceRequest (protobuf,
// gzip or not) and answers an empty ExportTraceServiceResponse; GET /stats
// answers the counts as JSON. It listens on loopback by default.
//
//	otlpsink -addr 127.0.0.1:4318
package main

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// counts is what the sink received.
type counts struct {
	Requests atomic.Uint64
	Spans    atomic.Uint64
	Bytes    atomic.Uint64
	Errors   atomic.Uint64
}

func main() {
	addr := flag.String("addr", "127.0.0.1:4318", "address to listen on")
	flag.Parse()
	var c counts
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, r *http.Request) {
		n, err := receive(r)
		if err != nil {
			c.Errors.Add(1)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.Requests.Add(1)
		c.Spans.Add(uint64(n.spans))
		c.Bytes.Add(uint64(n.bytes))
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]uint64{
			"requests": c.Requests.Load(), "spans": c.Spans.Load(), "bytes": c.Bytes.Load(), "errors": c.Errors.Load(),
		})
	})
	srv := &http.Server{Addr: *addr, Handler: mux}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		<-sig
		_ = srv.Close()
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	fmt.Printf("otlpsink requests=%d spans=%d bytes=%d errors=%d\n", c.Requests.Load(), c.Spans.Load(), c.Bytes.Load(), c.Errors.Load())
}

type received struct{ spans, bytes int }

// receive decodes one export request and counts its spans.
func receive(r *http.Request) (received, error) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return received{}, err
		}
		defer zr.Close()
		body = zr
	}
	data, err := io.ReadAll(io.LimitReader(body, 64<<20))
	if err != nil {
		return received{}, err
	}
	var req collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(data, &req); err != nil {
		return received{}, fmt.Errorf("not an ExportTraceServiceRequest: %w", err)
	}
	n := received{bytes: len(data)}
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			n.spans += len(ss.GetSpans())
		}
	}
	return n, nil
}
