// Command dockerserver is the service the Docker runtime tests run in a
// FROM-scratch image: it serves /healthz and /info on $PORT, and with
// -check asks its own /healthz (an exec probe inside the container).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	check := flag.Bool("check", false, "exit 0 when /healthz answers 200")
	flag.String("greeting", "", "ignored; shows that arguments arrive")
	flag.Parse()
	if *check {
		resp, err := http.Get("http://127.0.0.1:" + os.Getenv("PORT") + "/healthz")
		if err != nil || resp.StatusCode != http.StatusOK {
			os.Exit(1)
		}
		os.Exit(0)
	}
	terms := make(chan os.Signal, 1)
	signal.Notify(terms, syscall.SIGTERM)
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	http.HandleFunc("/info", func(w http.ResponseWriter, r *http.Request) {
		cfg, _ := os.ReadFile(os.Getenv("OPSPILOT_DIR") + "/config/app.conf")
		json.NewEncoder(w).Encode(map[string]any{"Args": os.Args, "Env": os.Environ(), "PID": os.Getpid(), "Config": string(cfg)})
	})
	go func() {
		if err := http.ListenAndServe(":"+os.Getenv("PORT"), nil); err != nil {
			fmt.Fprintln(os.Stderr, "dockerserver:", err)
			os.Exit(3)
		}
	}()
	fmt.Println("dockerserver started on port", os.Getenv("PORT"))
	<-terms
	fmt.Println("dockerserver got SIGTERM")
}
