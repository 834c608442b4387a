// Package file is the file connector: Replay (what `vigil replay` runs)
// sends files or stdin once, and File tails a file or a directory.
//
// # What a record is
//
// A file is read in one of two modes, chosen from its first non-empty
// line:
//
//   - lines: one record per non-empty line, for JSON lines (Defender XDR
//     and diagnostic-settings storage blobs), syslog and CEF text. The line
//     terminator (LF or CRLF), a leading UTF-8 BOM and surrounding blanks
//     are dropped; the rest is sent as it is.
//   - document: when the first line starts a JSON value that it does not
//     complete (a pretty-printed {"records":[...]} envelope, an NSG flow
//     log PT1H.json), the whole file is one record — or one per element if
//     it is a top-level array, or one per document if it holds several.
//
// # Checkpoints
//
// With a checkpoint file, each file's acknowledged byte offset is written
// after ProduceSync succeeded for the records before it (at most every
// CheckpointEvery, and at the end of every file), atomically, together
// with the file's size, modification time and a hash of its first bytes.
// A file whose size and modification time are unchanged and fully
// produced is not read again; one that grew resumes at its offset; one
// whose first bytes changed, or that became shorter than the offset, was
// replaced and is read from the start. A crash re-produces at most what
// was acknowledged since the last checkpoint write (at-least-once).
//
// # Rate and progress
//
// Rate limits records per second (golang.org/x/time/rate); records are
// still batched, but none waits more than 100 ms for its batch. A progress
// bar (schollz/progressbar) counts bytes when Progress is set, which
// TerminalProgress does only when stderr is a terminal.
//
// Metrics: see package connector; reasons too_large (a line over
// MaxLineBytes, skipped), bad_json (a document that does not parse, sent
// whole), read (a file that cannot be read, retried) and produce.
package file
