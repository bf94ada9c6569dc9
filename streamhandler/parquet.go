package streamhandler

import (
	"bytes"
	"fmt"

	"github.com/ddbrewind/rewind"
	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/format"
)

// parquetWriter encodes runs of events as Parquet files. The writer, its
// row buffer and the zstd encoder are kept across invocations: parquet-go's
// own zstd codec drops its pooled encoders at each GC and a new one costs
// about 16 MB, which would dominate a Lambda's memory.
type parquetWriter struct {
	codec *zstdCodec
	w     *parquet.GenericWriter[rewind.ParquetRow]
	buf   bytes.Buffer
	rows  []rewind.ParquetRow
}

func newParquetWriter(compression string) (*parquetWriter, error) {
	zc, err := newZstdCodec()
	if err != nil {
		return nil, err
	}
	var c compress.Codec
	switch compression {
	case "zstd":
		c = zc
	case "snappy":
		c = &parquet.Snappy
	case "gzip":
		c = &parquet.Gzip
	case "none":
		c = &parquet.Uncompressed
	default:
		return nil, fmt.Errorf("unknown compression %q", compression)
	}
	p := &parquetWriter{codec: zc}
	p.w = parquet.NewGenericWriter[rewind.ParquetRow](&p.buf,
		parquet.Compression(c),
		parquet.CreatedBy("rewind", "1", ""),
	)
	return p, nil
}

// encode returns a reader over a Parquet file holding evs in order. The
// reader's bytes are valid until the next call.
func (p *parquetWriter) encode(evs []rewind.ChangeEvent) (*bytes.Reader, error) {
	p.buf.Reset()
	p.w.Reset(&p.buf)
	if cap(p.rows) < len(evs) {
		p.rows = make([]rewind.ParquetRow, len(evs))
	}
	rows := p.rows[:len(evs)]
	for i := range evs {
		keys := rows[i].Keys
		rows[i].Keys = keys[:0]
		evs[i].ToParquetRow(&rows[i])
	}
	// Row groups of rowGroupRows bound the column buffers the writer
	// holds: images are most of a batch's bytes.
	for len(rows) > 0 {
		n := min(len(rows), rowGroupRows)
		if _, err := p.w.Write(rows[:n]); err != nil {
			return nil, err
		}
		if err := p.w.Flush(); err != nil {
			return nil, err
		}
		rows = rows[n:]
	}
	if err := p.w.Close(); err != nil {
		return nil, err
	}
	return bytes.NewReader(p.buf.Bytes()), nil
}

// rowGroupRows is the most rows per Parquet row group.
const rowGroupRows = 512

// zstdCodec is a parquet compression codec over one long-lived encoder and
// decoder.
type zstdCodec struct {
	enc *zstd.Encoder
	dec *zstd.Decoder
}

func newZstdCodec() (*zstdCodec, error) {
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithZeroFrames(true),
		zstd.WithEncoderCRC(false),
		zstd.WithWindowSize(1<<20),
	)
	if err != nil {
		return nil, err
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, err
	}
	return &zstdCodec{enc: enc, dec: dec}, nil
}

func (c *zstdCodec) String() string                            { return "ZSTD" }
func (c *zstdCodec) CompressionCodec() format.CompressionCodec { return format.Zstd }
func (c *zstdCodec) Encode(dst, src []byte) ([]byte, error) {
	return c.enc.EncodeAll(src, dst[:0]), nil
}
func (c *zstdCodec) Decode(dst, src []byte) ([]byte, error) { return c.dec.DecodeAll(src, dst[:0]) }
