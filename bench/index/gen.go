package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/ddbrewind/rewind"
	"github.com/parquet-go/parquet-go"
)

// genConfig describes a synthetic capture: one table, tenants with a Zipf
// distribution of traffic (a few big, many small), keys per tenant in
// proportion, and ~ImageBytes-byte images.
type genConfig struct {
	Dir          string
	Events       int
	Days         int
	Tenants      int
	Keys         int
	FilesPerHour int
	ImageBytes   int
	Skew         float64 // Zipf exponent
	Seed         uint64
	Start        time.Time
}

func (c *genConfig) hours() int { return c.Days * 24 }

// generate writes the capture under c.Dir as the stream handler lays it out.
func generate(c genConfig) error {
	rng := rand.New(rand.NewPCG(c.Seed, 0x5eed))
	// Tenant weights and key ranges.
	cum := make([]float64, c.Tenants)
	var total float64
	for i := range c.Tenants {
		total += 1 / math.Pow(float64(i+1), c.Skew)
		cum[i] = total
	}
	keyStart := make([]int, c.Tenants+1)
	for i := range c.Tenants {
		w := 1 / math.Pow(float64(i+1), c.Skew) / total
		keyStart[i+1] = keyStart[i] + max(3, int(math.Round(w*float64(c.Keys))))
	}
	exists := make([]bool, keyStart[c.Tenants])
	names := make([]string, c.Tenants)
	for i := range names {
		names[i] = fmt.Sprintf("t%04d", i)
	}

	type job struct {
		path string
		rows []rewind.ParquetRow
	}
	jobs := make(chan job, 2)
	var wg sync.WaitGroup
	var werr error
	var mu sync.Mutex
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if err := writeParquet(j.path, j.rows); err != nil {
					mu.Lock()
					werr = err
					mu.Unlock()
				}
			}
		}()
	}

	seq := int64(100000000000000000)
	perHour := c.Events / c.hours()
	extra := c.Events - perHour*c.hours()
	// Notes are slices of one block of random text: images compress
	// about as well as real ones, and making them costs little.
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789 "
	noise := make([]byte, 1<<16)
	for i := range noise {
		noise[i] = letters[rng.IntN(len(letters))]
	}
	statuses := []string{"new", "paid", "shipped"}
	for h := range c.hours() {
		n := perHour
		if h < extra {
			n++
		}
		hour := c.Start.Add(time.Duration(h) * time.Hour)
		times := make([]int64, n)
		for i := range times {
			times[i] = hour.UnixMicro() + rng.Int64N(int64(time.Hour/time.Microsecond))
		}
		slices.Sort(times)
		rows := make([]rewind.ParquetRow, n)
		for i := range rows {
			u := rng.Float64() * total
			t := sort.SearchFloat64s(cum, u)
			if t >= c.Tenants {
				t = c.Tenants - 1
			}
			k := keyStart[t] + rng.IntN(keyStart[t+1]-keyStart[t])
			pk, sk := "TENANT#"+names[t], fmt.Sprintf("ITEM#%07d", k-keyStart[t])
			seq += 1 + rng.Int64N(50)
			r := &rows[i]
			r.EventID = fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64())
			r.SourceTable = "orders"
			r.Region = "eu-west-1"
			r.Tenant = names[t]
			r.EventTime = times[i]
			r.SequenceNumber = strconv.FormatInt(seq, 10)
			r.ShardID = "shardId-000000000001"
			r.StreamViewType = "NEW_AND_OLD_IMAGES"
			r.Keys = []byte(`{"pk":{"S":"` + pk + `"},"sk":{"S":"` + sk + `"}}`)
			r.SizeBytes = int64(2*c.ImageBytes + 100)
			image := func(version string) []byte {
				noteLen := max(0, c.ImageBytes-130-len(pk)-len(sk))
				off := rng.IntN(len(noise) - noteLen)
				return fmt.Appendf(nil, `{"amount":{"N":"%d.%02d"},"deployVersion":{"S":"%s"},"note":{"S":"%s"},"pk":{"S":"%s"},"sk":{"S":"%s"},"status":{"S":"%s"}}`,
					rng.IntN(100000), rng.IntN(100), version, noise[off:off+noteLen], pk, sk, statuses[rng.IntN(3)])
			}
			version := "v41"
			if h >= c.hours()*2/3 {
				version = "v42"
			}
			switch x := rng.IntN(100); {
			case !exists[k]:
				r.Action = string(rewind.ActionInsert)
				r.NewImage = image(version)
				r.ChangedAttributes = []string{"amount", "deployVersion", "note", "pk", "sk", "status"}
				exists[k] = true
			case x < 85:
				r.Action = string(rewind.ActionModify)
				r.OldImage = image("v41")
				r.NewImage = image(version)
				r.ChangedAttributes = []string{"amount", "status"}
			default:
				r.Action = string(rewind.ActionRemove)
				r.OldImage = image("v41")
				r.TTLExpiry = x >= 95
				r.ChangedAttributes = []string{"amount", "deployVersion", "note", "pk", "sk", "status"}
				exists[k] = false
			}
		}
		files := max(1, c.FilesPerHour)
		for f := range files {
			lo, hi := f*n/files, (f+1)*n/files
			if lo == hi {
				continue
			}
			chunk := rows[lo:hi]
			path := filepath.Join(c.Dir, "table=orders", "dt="+hour.Format("2006-01-02"), fmt.Sprintf("hour=%02d", hour.Hour()),
				fmt.Sprintf("stream-%s-%s.parquet", chunk[0].SequenceNumber, chunk[len(chunk)-1].SequenceNumber))
			jobs <- job{path, chunk}
		}
		if (h+1)%24 == 0 {
			fmt.Fprintf(os.Stderr, "gen: day %d of %d\n", (h+1)/24, c.Days)
		}
	}
	close(jobs)
	wg.Wait()
	return werr
}

func writeParquet(path string, rows []rewind.ParquetRow) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := parquet.NewGenericWriter[rewind.ParquetRow](f, parquet.Compression(&parquet.Zstd), parquet.CreatedBy("rewind-bench", "1", ""))
	if _, err := w.Write(rows); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := w.Close(); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}
