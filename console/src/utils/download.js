/** Save a Blob as a file named `filename` (the browser's download). */
export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob)
  const a = document.createElement('a')
  a.href = url
  a.download = filename
  a.rel = 'noopener'
  document.body.appendChild(a)
  a.click()
  a.remove()
  setTimeout(() => URL.revokeObjectURL(url), 10_000)
}

/** A file name without characters file systems refuse. */
export function safeFileName(s) {
  return String(s ?? '').replace(/[\\/:*?"<>|\s]+/g, '_').slice(0, 80) || 'export'
}
