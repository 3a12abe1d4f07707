package config

import (
	"bytes"
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/BurntSushi/toml"
)

// WriteTOML prints c as commented TOML that Load accepts back. The comments
// come from the `doc` tags, so the printed file documents every key.
func (c Config) WriteTOML(w io.Writer) error {
	var b bytes.Buffer
	b.WriteString("# crid configuration. Every key is shown with its value in force;\n")
	b.WriteString("# flags given on the command line override the file.\n")
	if err := writeTable(&b, "", reflect.ValueOf(c)); err != nil {
		return err
	}
	_, err := w.Write(b.Bytes())
	return err
}

// writeTable writes the plain keys of a struct first and its sub-tables
// after, as TOML requires: a key after a [table] header belongs to it.
func writeTable(b *bytes.Buffer, prefix string, v reflect.Value) error {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Type.Kind() == reflect.Struct {
			continue
		}
		key := f.Tag.Get("toml")
		b.WriteString("\n")
		writeComment(b, f.Tag.Get("doc"))
		var kv bytes.Buffer
		if err := toml.NewEncoder(&kv).Encode(map[string]any{key: v.Field(i).Interface()}); err != nil {
			return fmt.Errorf("encode %s%s: %w", prefix, key, err)
		}
		b.Write(kv.Bytes())
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Type.Kind() != reflect.Struct {
			continue
		}
		name := prefix + f.Tag.Get("toml")
		b.WriteString("\n")
		writeComment(b, f.Tag.Get("doc"))
		fmt.Fprintf(b, "[%s]\n", name)
		if err := writeTable(b, name+".", v.Field(i)); err != nil {
			return err
		}
	}
	return nil
}

func writeComment(b *bytes.Buffer, doc string) {
	for _, line := range wrap(doc, 76) {
		b.WriteString("# " + line + "\n")
	}
}

func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(text) {
		if line != "" && len(line)+1+len(word) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
