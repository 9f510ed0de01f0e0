package httpapi

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"go.yaml.in/yaml/v3"
)

// openAPIYAML is the API's OpenAPI 3 document, written by hand (spec
// first); tests check that it matches the routes and the answers.
//
//go:embed openapi.yaml
var openAPIYAML []byte

// openAPIJSON converts the document to JSON once.
var openAPIJSON = sync.OnceValues(func() ([]byte, error) { return yamlToJSON(openAPIYAML) })

// yamlToJSON converts a YAML document to JSON. Mapping keys become strings
// (status codes such as 200 may be written unquoted) and timestamps RFC 3339
// strings.
func yamlToJSON(doc []byte) ([]byte, error) {
	var v any
	if err := yaml.Unmarshal(doc, &v); err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	v, err := jsonValue(v)
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	return json.Marshal(v)
}

func jsonValue(v any) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			j, err := jsonValue(e)
			if err != nil {
				return nil, err
			}
			v[k] = j
		}
		return v, nil
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			j, err := jsonValue(e)
			if err != nil {
				return nil, err
			}
			out[fmt.Sprint(k)] = j
		}
		return out, nil
	case []any:
		for i, e := range v {
			j, err := jsonValue(e)
			if err != nil {
				return nil, err
			}
			v[i] = j
		}
		return v, nil
	case time.Time: // an unquoted timestamp
		return v.Format(time.RFC3339Nano), nil
	case string, bool, int, int64, uint64, float64, nil:
		return v, nil
	default:
		return nil, fmt.Errorf("value %v of type %T has no JSON form", v, v)
	}
}

// openAPI serves GET /openapi.json.
func (a *api) openAPI(c echo.Context) error {
	b, err := openAPIJSON()
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, b)
}
