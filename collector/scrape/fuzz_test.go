package scrape

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/golang/snappy"

	"opspilot/tsdb"
)

func fuzzHandler(t testing.TB) *PushHandler {
	h, err := NewPushHandler(func(tss []tsdb.TimeSeries) error {
		for _, ts := range tss {
			if len(ts.Labels) == 0 || len(ts.Samples) == 0 {
				t.Errorf("sink got an empty series: %+v", ts)
			}
		}
		return nil
	}, nil, 4096, nil)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func fuzzPush(t *testing.T, h *PushHandler, path string, body []byte) {
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body)))
	switch rr.Code {
	case http.StatusNoContent, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
	default:
		t.Fatalf("status %d (%s) for body %q", rr.Code, rr.Body, body)
	}
}

func FuzzPushText(f *testing.F) {
	for _, s := range []string{
		"a 1\n", `x{a="b",c="d"} 1.5 1700000000000` + "\n", "# HELP a h\n# TYPE a counter\na_total 3\n",
		"a NaN\nb +Inf\nc -Inf", `a{b="\n\"\\"} 1`, "{\"utf8.name\"} 1\n", "a{", "", "\n\n",
	} {
		f.Add([]byte(s))
	}
	h := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzPush(t, h, ImportTextPath, body)
	})
}

func FuzzPushRemoteWrite(f *testing.F) {
	f.Add(remoteWriteBody([]tsdb.TimeSeries{{Labels: []tsdb.Label{{Name: "__name__", Value: "a"}, {Name: "b", Value: "c"}}, Samples: []tsdb.Sample{{Value: 1, Timestamp: 2}}}}))
	f.Add(snappy.Encode(nil, []byte{0x0a, 0x02, 0x0a, 0x00}))
	f.Add([]byte{})
	f.Add([]byte("garbage"))
	h := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzPush(t, h, RemoteWritePath, body)
		// Also as a snappy frame, to reach the protobuf decoder.
		fuzzPush(t, h, RemoteWritePath, snappy.Encode(nil, body))
	})
}
