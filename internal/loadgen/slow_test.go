package loadgen

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestSlowClientsAreCutByAServerWithTimeouts(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = r.Body.Read(make([]byte, 1<<16))
	}))
	srv.Config.ReadTimeout = 200 * time.Millisecond
	srv.Start()
	defer srv.Close()
	stop, err := SlowClients(context.Background(), srv.URL, 5, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond) // several read timeouts of the server
	st := stop()
	if st.Opened != 5 || st.ClosedByServer != 5 || st.Failed != 0 {
		t.Fatalf("%v; want 5 opened, all closed by the server", st)
	}
}

func TestSlowClientsOnlyToLoopback(t *testing.T) {
	if _, err := SlowClients(context.Background(), "http://192.0.2.1:80", 1, time.Second); !errors.Is(err, ErrRemoteTarget) {
		t.Fatalf("remote target: %v, want ErrRemoteTarget", err)
	}
}
