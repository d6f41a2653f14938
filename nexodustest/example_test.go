package nexodustest_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nexodus-sdk/nexodus/nexodustest"
)

// testGreeting is how an application tests a service it serves on the mesh: the Kit brings up
// the coordinator, a relay and two Nodes; the service listens on one, the test calls it from the
// other by hostname.
func testGreeting(t *testing.T) {
	kit := nexodustest.New(t)
	api, laptop := kit.Pair("api", "laptop")

	ln, err := api.Listen("tcp", ":80")
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who, _ := api.WhoIs(r.RemoteAddr)
		io.WriteString(w, "hello "+who.Hostname)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	hc := laptop.HTTPClient()
	t.Cleanup(hc.CloseIdleConnections)
	resp, err := hc.Get("http://api/")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, "hello laptop", string(body))
}

// Example shows a test of an application's service over the mesh; in a _test.go file it is a
// plain func TestGreeting(t *testing.T).
func Example() {
	_ = testGreeting
}

func TestGreeting(t *testing.T) { testGreeting(t) }
