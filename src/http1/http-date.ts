let dateText = ''
let dateSecond = -1

/** The current time as an HTTP date (RFC 9110 §5.6.7), formatted at most once a second. */
export function httpDate(): string {
  const now = Date.now()
  const second = Math.floor(now / 1000)
  if (second !== dateSecond) {
    dateSecond = second
    dateText = new Date(now).toUTCString()
  }
  return dateText
}
