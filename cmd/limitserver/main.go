// Command limitserver is the physical limit the order path is measured
// against (issue 16): the same routes as a node — POST /orders,
// GET /orders/{id}, GET /health/live — on bare echo with encoding/json and a
// mutex-guarded map. No actor, no journal, no outbox, no read model: only
// the JSON, the routing and the HTTP server that any implementation pays.
// scripts/limit.sh measures it next to a node.
//
//	go run ./cmd/limitserver -port 5300
package main

import (
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

type item struct {
	ProductID string  `json:"productId"`
	Name      string  `json:"name"`
	Quantity  int     `json:"quantity"`
	Price     float64 `json:"price"`
}

type createReq struct {
	CustomerID string `json:"customerId"`
	Items      []item `json:"items"`
}

type orderJSON struct {
	OrderID    string    `json:"orderId"`
	CustomerID string    `json:"customerId"`
	Items      []item    `json:"items"`
	Status     string    `json:"status"`
	Total      float64   `json:"total"`
	Version    uint64    `json:"version"`
	CreatedAt  time.Time `json:"createdAt"`
}

type store struct {
	mu     sync.RWMutex
	orders map[string]*orderJSON
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func main() {
	port := flag.Int("port", 5300, "HTTP port (127.0.0.1)")
	flag.Parse()
	s := &store{orders: map[string]*orderJSON{}}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.GET("/health/live", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "live"})
	})
	e.POST("/orders", func(c echo.Context) error {
		var req createReq
		if err := c.Bind(&req); err != nil || req.CustomerID == "" || len(req.Items) == 0 {
			return c.JSON(http.StatusBadRequest, map[string]string{"error": "customerId and items are required"})
		}
		o := &orderJSON{OrderID: newID(), CustomerID: req.CustomerID, Items: req.Items, Status: "Pending", Version: 1, CreatedAt: time.Now().UTC()}
		for _, it := range req.Items {
			if it.Quantity <= 0 || it.Price < 0 {
				return c.JSON(http.StatusBadRequest, map[string]string{"error": "bad item"})
			}
			o.Total += float64(it.Quantity) * it.Price
		}
		s.mu.Lock()
		s.orders[o.OrderID] = o
		s.mu.Unlock()
		c.Response().Header().Set(echo.HeaderLocation, "/orders/"+o.OrderID)
		return c.JSON(http.StatusCreated, o)
	})
	e.GET("/orders/:id", func(c echo.Context) error {
		s.mu.RLock()
		o, ok := s.orders[c.Param("id")]
		s.mu.RUnlock()
		if !ok {
			return c.JSON(http.StatusNotFound, map[string]string{"error": "order not found"})
		}
		return c.JSON(http.StatusOK, o)
	})
	// GET /orders lets the load generator's read scenario find the pool it
	// created (it lists nothing else here).
	e.GET("/orders", func(c echo.Context) error {
		return c.JSON(http.StatusOK, []orderJSON{})
	})
	if err := e.Start(fmt.Sprintf("127.0.0.1:%d", *port)); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "limitserver:", err)
		os.Exit(1)
	}
}
