package httpapi

import (
	"encoding/json"
	"testing"
)

func TestYAMLToJSON(t *testing.T) {
	got, err := yamlToJSON([]byte("a:\n  200: {b: [1, 2.5, true, null, x]}\n  '201': y\nwhen: 2026-11-25T06:25:25Z\n"))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(got, &v); err != nil {
		t.Fatal(err)
	}
	want := `{"a":{"200":{"b":[1,2.5,true,null,"x"]},"201":"y"},"when":"2026-11-25T06:25:25Z"}`
	if string(got) != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	if _, err := yamlToJSON([]byte("a: [")); err == nil {
		t.Fatal("broken YAML converted")
	}
	if _, err := openAPIJSON(); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
}
