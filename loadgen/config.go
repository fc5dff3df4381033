package loadgen

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"time"
)

// Config describes one load run. Zero values take the defaults.
type Config struct {
	// Target is the base URL requests go to, e.g. the gateway's
	// http://127.0.0.1:8080/billing; paths (/pay, /refund, /healthz) are
	// appended.
	Target string
	// Rate is the mean offered rate in requests per second (the wave's
	// midline, before any surge); default 50.
	Rate float64
	// Duration is how long to offer load; zero runs until ctx is done.
	Duration time.Duration
	// Wave makes the rate follow a daily cycle.
	Wave Wave
	// Surge multiplies the rate for a window, like a promotion.
	Surge Surge
	// Mix is the share of each request kind.
	Mix Mix
	// Concurrency caps requests in flight; a request due while the cap is
	// reached is not sent and counts as dropped (the offered rate is kept,
	// the generator does not slow down with the target). Default 512.
	Concurrency int
	// Timeout bounds each request; default 5s.
	Timeout time.Duration
	// Progress, when set, is called every ProgressInterval (default 1s)
	// and once more at the end, from a goroutine of Run.
	Progress         func(Progress)
	ProgressInterval time.Duration
}

// Wave is a sinusoidal daily cycle: the rate swings between
// (1-Amplitude)×Rate at the trough and (1+Amplitude)×Rate at the peak.
type Wave struct {
	// Amplitude is the swing as a fraction of the mean rate, 0 (flat,
	// the default) to 1 (down to zero at the trough).
	Amplitude float64
	// Period is the length of one simulated cycle; default 24h.
	Period time.Duration
	// Compress plays the cycle this many times faster: 144 plays a 24h
	// day in 10 minutes. Default 1 (real time).
	Compress float64
	// Start is the simulated time of day the run starts at; the trough is
	// at 0 (midnight) and the peak at Period/2 (noon). Default 0.
	Start time.Duration
}

// Surge multiplies the rate by Multiplier from Start (after the run began,
// in real time) for Length. Zero Length means no surge.
type Surge struct {
	Start      time.Duration
	Length     time.Duration
	Multiplier float64 // default 3
}

// Mix gives the relative weights of the request kinds. The zero value is
// the default: 90% POST /pay, 10% POST /refund, no GET /healthz.
type Mix struct {
	Pay, Refund, Health float64
}

// Defaults.
const (
	DefaultRate             = 50
	DefaultConcurrency      = 512
	DefaultTimeout          = 5 * time.Second
	DefaultPeriod           = 24 * time.Hour
	DefaultSurgeMultiplier  = 3
	DefaultProgressInterval = time.Second
)

// DefaultMix is the mix used when Config.Mix is zero.
var DefaultMix = Mix{Pay: 0.9, Refund: 0.1}

// DefaultSurge is the surge `opspilot loadgen --surge` plays in a run of
// length d: 3× for the middle third.
func DefaultSurge(d time.Duration) Surge {
	return Surge{Start: d / 3, Length: d / 3, Multiplier: DefaultSurgeMultiplier}
}

func (c Config) withDefaults() Config {
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = DefaultProgressInterval
	}
	if c.Wave.Period == 0 {
		c.Wave.Period = DefaultPeriod
	}
	if c.Wave.Compress == 0 {
		c.Wave.Compress = 1
	}
	if c.Surge.Length > 0 && c.Surge.Multiplier == 0 {
		c.Surge.Multiplier = DefaultSurgeMultiplier
	}
	if c.Mix == (Mix{}) {
		c.Mix = DefaultMix
	}
	return c
}

// validate checks a config that went through withDefaults.
func (c Config) validate() error {
	u, err := url.Parse(c.Target)
	switch {
	case c.Target == "":
		return errors.New("loadgen: no target; pass the gateway's URL with the service path, e.g. http://127.0.0.1:8080/billing, or --server to discover it")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("loadgen: target %q must be an absolute http(s) URL, e.g. http://127.0.0.1:8080/billing", c.Target)
	case !(c.Rate > 0) || math.IsInf(c.Rate, 0):
		return fmt.Errorf("loadgen: rate %v must be a positive number of requests per second", c.Rate)
	case c.Duration < 0:
		return fmt.Errorf("loadgen: duration %s is negative", c.Duration)
	case c.Concurrency < 1:
		return fmt.Errorf("loadgen: concurrency %d must be at least 1", c.Concurrency)
	case c.Timeout < 0:
		return fmt.Errorf("loadgen: timeout %s is negative", c.Timeout)
	case c.ProgressInterval < 0:
		return fmt.Errorf("loadgen: progress interval %s is negative", c.ProgressInterval)
	case c.Wave.Amplitude < 0 || c.Wave.Amplitude > 1:
		return fmt.Errorf("loadgen: wave amplitude %v must be between 0 and 1 (a fraction of the mean rate)", c.Wave.Amplitude)
	case c.Wave.Period < 0 || c.Wave.Compress < 0 || c.Wave.Start < 0:
		return errors.New("loadgen: wave period, compress and start must not be negative")
	case c.Surge.Start < 0 || c.Surge.Length < 0 || c.Surge.Multiplier < 0:
		return errors.New("loadgen: surge start, length and multiplier must not be negative")
	case c.Mix.Pay < 0 || c.Mix.Refund < 0 || c.Mix.Health < 0:
		return fmt.Errorf("loadgen: mix weights %+v must not be negative", c.Mix)
	}
	return nil
}

// Factor is the wave's multiplier at elapsed real time since the start:
// 1 - Amplitude·cos(2π·(Start + elapsed·Compress)/Period).
func (w Wave) Factor(elapsed time.Duration) float64 {
	if w.Amplitude == 0 || w.Period <= 0 {
		return 1
	}
	compress := w.Compress
	if compress <= 0 {
		compress = 1
	}
	sim := w.Start.Seconds() + elapsed.Seconds()*compress
	return 1 - w.Amplitude*math.Cos(2*math.Pi*sim/w.Period.Seconds())
}

// Factor is the surge's multiplier at elapsed: Multiplier inside
// [Start, Start+Length), else 1.
func (s Surge) Factor(elapsed time.Duration) float64 {
	if s.Length > 0 && elapsed >= s.Start && elapsed < s.Start+s.Length {
		return s.Multiplier
	}
	return 1
}

// RateAt is the offered rate (requests per second) at elapsed since the
// start of the run. Call it on a config with defaults applied (Run does).
func (c Config) RateAt(elapsed time.Duration) float64 {
	return c.Rate * c.Wave.Factor(elapsed) * c.Surge.Factor(elapsed)
}

// requestsBetween is the expected number of requests in [a, b): the
// integral of RateAt, by Simpson's rule on pieces split at the surge's
// edges (the wave is smooth; the surge is a step).
func (c Config) requestsBetween(a, b time.Duration) float64 {
	if b <= a {
		return 0
	}
	cuts := []time.Duration{a}
	if c.Surge.Length > 0 {
		for _, e := range []time.Duration{c.Surge.Start, c.Surge.Start + c.Surge.Length} {
			if e > a && e < b {
				cuts = append(cuts, e)
			}
		}
	}
	cuts = append(cuts, b)
	const step = 100 * time.Millisecond
	total := 0.0
	for i := 1; i < len(cuts); i++ {
		// The surge factor is constant on the piece; take it outside.
		surge := c.Surge.Factor(cuts[i-1])
		f := func(t time.Duration) float64 { return c.Rate * c.Wave.Factor(t) * surge }
		for lo := cuts[i-1]; lo < cuts[i]; lo += step {
			hi := min(lo+step, cuts[i])
			total += (hi - lo).Seconds() / 6 * (f(lo) + 4*f(lo+(hi-lo)/2) + f(hi))
		}
	}
	return total
}
