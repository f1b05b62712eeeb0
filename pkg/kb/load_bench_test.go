package kb

import (
	"io/fs"
	"testing"
)

// Loading validates and lints the whole knowledge base; the plugin pays
// this once at init.
func BenchmarkLoadEmbedded(b *testing.B) {
	sub, err := fs.Sub(embedded, "data")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Load(sub); err != nil {
			b.Fatal(err)
		}
	}
}
