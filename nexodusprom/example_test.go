package nexodusprom_test

import (
	"log"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nexodus-sdk/nexodus"
	"github.com/nexodus-sdk/nexodus/nexodusprom"
)

// A program serves its node's metrics beside its own.
func ExampleNewCollector() {
	node := &nexodus.Node{ControlURL: "https://coord.example.com", AuthKey: "…", Hostname: "api"}
	defer node.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(nexodusprom.NewCollector(node))
	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	log.Fatal(http.ListenAndServe("127.0.0.1:9100", nil))
}
