/**
 * Reads OTLP/HTTP protobuf requests (`ExportTraceServiceRequest`, `ExportMetricsServiceRequest`,
 * `ExportLogsServiceRequest`) into the shape of their OTLP/JSON form, so that one set of assertions
 * checks both encodings. Written from the protobuf wire format and the field numbers of
 * opentelemetry-proto (v1): a test decoder, independent of Effect's encoder, with no dependency.
 * Only the fields the tests read are mapped; any other field is skipped by its wire type.
 */

/** One field as read off the wire: a varint, a fixed 64/32-bit value or a length-delimited slice. */
type Value =
  | { readonly wire: 0; readonly varint: bigint }
  | { readonly wire: 1; readonly bytes: Uint8Array }
  | { readonly wire: 2; readonly bytes: Uint8Array }
  | { readonly wire: 5; readonly bytes: Uint8Array }

/** A message: its fields by number, each repeated as often as it occurs. */
type Fields = Map<number, Array<Value>>

const readVarint = (bytes: Uint8Array, at: { i: number }): bigint => {
  let result = 0n
  let shift = 0n
  for (;;) {
    if (at.i >= bytes.length) throw new Error("protobuf: truncated varint")
    const byte = bytes[at.i++]!
    result |= BigInt(byte & 0x7f) << shift
    if ((byte & 0x80) === 0) return result
    shift += 7n
    if (shift > 63n) throw new Error("protobuf: varint longer than 10 bytes")
  }
}

const take = (bytes: Uint8Array, at: { i: number }, n: number): Uint8Array => {
  if (at.i + n > bytes.length) throw new Error(`protobuf: field of ${n} bytes past the end`)
  const slice = bytes.subarray(at.i, at.i + n)
  at.i += n
  return slice
}

export const decodeMessage = (bytes: Uint8Array): Fields => {
  const fields: Fields = new Map()
  const at = { i: 0 }
  while (at.i < bytes.length) {
    const key = readVarint(bytes, at)
    const number = Number(key >> 3n)
    const wire = Number(key & 7n)
    let value: Value
    switch (wire) {
      case 0:
        value = { wire, varint: readVarint(bytes, at) }
        break
      case 1:
        value = { wire, bytes: take(bytes, at, 8) }
        break
      case 2:
        value = { wire, bytes: take(bytes, at, Number(readVarint(bytes, at))) }
        break
      case 5:
        value = { wire, bytes: take(bytes, at, 4) }
        break
      default:
        throw new Error(`protobuf: wire type ${wire} (field ${number}) is not used by OTLP`)
    }
    const list = fields.get(number)
    if (list === undefined) fields.set(number, [value])
    else list.push(value)
  }
  return fields
}

const all = (fields: Fields, n: number) => fields.get(n) ?? []
const last = (fields: Fields, n: number) => all(fields, n).at(-1)
const bytesOf = (v: Value | undefined) => (v !== undefined && v.wire !== 0 ? v.bytes : undefined)
const messages = (fields: Fields, n: number) => all(fields, n).map((v) => decodeMessage(bytesOf(v)!))
const message = (fields: Fields, n: number) => {
  const b = bytesOf(last(fields, n))
  return b === undefined ? undefined : decodeMessage(b)
}
const string = (fields: Fields, n: number) => {
  const b = bytesOf(last(fields, n))
  return b === undefined ? "" : new TextDecoder().decode(b)
}
const hex = (fields: Fields, n: number) => Buffer.from(bytesOf(last(fields, n)) ?? []).toString("hex")
const varint = (fields: Fields, n: number) => {
  const v = last(fields, n)
  return v?.wire === 0 ? v.varint : 0n
}
const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength)
/** fixed64 (a time in nanoseconds, a count) as the decimal string OTLP/JSON uses. */
const fixed64 = (fields: Fields, n: number) => {
  const b = bytesOf(last(fields, n))
  return b === undefined ? "0" : String(view(b).getBigUint64(0, true))
}
const double = (fields: Fields, n: number) => {
  const b = bytesOf(last(fields, n))
  return b === undefined ? undefined : view(b).getFloat64(0, true)
}
/** A packed (or unpacked) repeated fixed64 / double field. */
const packed = <A>(fields: Fields, n: number, read: (d: DataView, i: number) => A): Array<A> =>
  all(fields, n).flatMap((v) => {
    const b = bytesOf(v)!
    const d = view(b)
    return Array.from({ length: b.byteLength / 8 }, (_, i) => read(d, i * 8))
  })

/** int64 as two's complement: the varint of a negative number has its 64th bit set. */
const int64 = (v: bigint) => BigInt.asIntN(64, v)

// AnyValue: 1 string, 2 bool, 3 int, 4 double, 5 array, 6 kvlist, 7 bytes
const anyValue = (f: Fields): Record<string, unknown> => {
  if (f.has(1)) return { stringValue: string(f, 1) }
  if (f.has(2)) return { boolValue: varint(f, 2) !== 0n }
  if (f.has(3)) return { intValue: String(int64(varint(f, 3))) }
  if (f.has(4)) return { doubleValue: double(f, 4) }
  if (f.has(5)) return { arrayValue: { values: messages(message(f, 5)!, 1).map(anyValue) } }
  if (f.has(6)) return { kvlistValue: { values: keyValues(message(f, 6)!, 1) } }
  if (f.has(7)) return { bytesValue: Buffer.from(bytesOf(last(f, 7))!).toString("base64") }
  return {}
}

// KeyValue: 1 key, 2 value
const keyValues = (f: Fields, n: number) =>
  messages(f, n).map((kv) => ({ key: string(kv, 1), value: anyValue(message(kv, 2) ?? new Map()) }))

// Resource: 1 attributes. InstrumentationScope: 1 name, 2 version
const resource = (f: Fields | undefined) => ({ attributes: f === undefined ? [] : keyValues(f, 1) })
const scope = (f: Fields | undefined) => ({ name: f === undefined ? "" : string(f, 1), version: f === undefined ? "" : string(f, 2) })

// Span: 1 trace_id, 2 span_id, 4 parent_span_id, 5 name, 6 kind, 7 start, 8 end, 9 attributes,
// 11 events (1 time, 2 name, 3 attributes), 13 links (1 trace_id, 2 span_id, 4 attributes),
// 15 status (2 message, 3 code)
const span = (f: Fields) => {
  const status = message(f, 15)
  return {
    traceId: hex(f, 1),
    spanId: hex(f, 2),
    parentSpanId: hex(f, 4),
    name: string(f, 5),
    kind: Number(varint(f, 6)),
    startTimeUnixNano: fixed64(f, 7),
    endTimeUnixNano: fixed64(f, 8),
    attributes: keyValues(f, 9),
    events: messages(f, 11).map((e) => ({ timeUnixNano: fixed64(e, 1), name: string(e, 2), attributes: keyValues(e, 3) })),
    links: messages(f, 13).map((l) => ({ traceId: hex(l, 1), spanId: hex(l, 2), attributes: keyValues(l, 4) })),
    status: status === undefined ? { code: 0 } : { code: Number(varint(status, 3)), message: string(status, 2) }
  }
}

/** ExportTraceServiceRequest: 1 resource_spans (1 resource, 2 scope_spans (1 scope, 2 spans)). */
export const traces = (bytes: Uint8Array) => ({
  resourceSpans: messages(decodeMessage(bytes), 1).map((rs) => ({
    resource: resource(message(rs, 1)),
    scopeSpans: messages(rs, 2).map((ss) => ({ scope: scope(message(ss, 1)), spans: messages(ss, 2).map(span) }))
  }))
})

// NumberDataPoint: 7 attributes, 2 start, 3 time, 4 as_double, 6 as_int (sfixed64)
const numberPoint = (f: Fields) => ({
  attributes: keyValues(f, 7),
  startTimeUnixNano: fixed64(f, 2),
  timeUnixNano: fixed64(f, 3),
  ...(f.has(4) ? { asDouble: double(f, 4) } : {}),
  ...(f.has(6) ? { asInt: String(view(bytesOf(last(f, 6))!).getBigInt64(0, true)) } : {})
})

// HistogramDataPoint: 9 attributes, 2 start, 3 time, 4 count, 5 sum, 6 bucket_counts, 7 explicit_bounds, 11 min, 12 max
const histogramPoint = (f: Fields) => ({
  attributes: keyValues(f, 9),
  startTimeUnixNano: fixed64(f, 2),
  timeUnixNano: fixed64(f, 3),
  count: fixed64(f, 4),
  sum: double(f, 5),
  bucketCounts: packed(f, 6, (d, i) => String(d.getBigUint64(i, true))),
  explicitBounds: packed(f, 7, (d, i) => d.getFloat64(i, true)),
  min: double(f, 11),
  max: double(f, 12)
})

// Metric: 1 name, 2 description, 3 unit, 5 gauge (1 points), 7 sum (1 points, 2 temporality,
// 3 monotonic), 9 histogram (1 points, 2 temporality)
const metric = (f: Fields) => {
  const gauge = message(f, 5)
  const sum = message(f, 7)
  const histogram = message(f, 9)
  return {
    name: string(f, 1),
    description: string(f, 2),
    unit: string(f, 3),
    ...(gauge !== undefined ? { gauge: { dataPoints: messages(gauge, 1).map(numberPoint) } } : {}),
    ...(sum !== undefined
      ? {
        sum: {
          dataPoints: messages(sum, 1).map(numberPoint),
          aggregationTemporality: Number(varint(sum, 2)),
          isMonotonic: varint(sum, 3) !== 0n
        }
      }
      : {}),
    ...(histogram !== undefined
      ? {
        histogram: {
          dataPoints: messages(histogram, 1).map(histogramPoint),
          aggregationTemporality: Number(varint(histogram, 2))
        }
      }
      : {})
  }
}

/** ExportMetricsServiceRequest: 1 resource_metrics (1 resource, 2 scope_metrics (1 scope, 2 metrics)). */
export const metrics = (bytes: Uint8Array) => ({
  resourceMetrics: messages(decodeMessage(bytes), 1).map((rm) => ({
    resource: resource(message(rm, 1)),
    scopeMetrics: messages(rm, 2).map((sm) => ({ scope: scope(message(sm, 1)), metrics: messages(sm, 2).map(metric) }))
  }))
})

// LogRecord: 1 time, 2 severity_number, 3 severity_text, 5 body, 6 attributes, 9 trace_id, 10 span_id
const logRecord = (f: Fields) => ({
  timeUnixNano: fixed64(f, 1),
  severityNumber: Number(varint(f, 2)),
  severityText: string(f, 3),
  body: anyValue(message(f, 5) ?? new Map()),
  attributes: keyValues(f, 6),
  traceId: hex(f, 9),
  spanId: hex(f, 10)
})

/** ExportLogsServiceRequest: 1 resource_logs (1 resource, 2 scope_logs (1 scope, 2 log_records)). */
export const logs = (bytes: Uint8Array) => ({
  resourceLogs: messages(decodeMessage(bytes), 1).map((rl) => ({
    resource: resource(message(rl, 1)),
    scopeLogs: messages(rl, 2).map((sl) => ({ scope: scope(message(sl, 1)), logRecords: messages(sl, 2).map(logRecord) }))
  }))
})

/** A request body by its path, in the OTLP/JSON shape. */
export const decodeRequest = (path: string, bytes: Uint8Array): unknown =>
  path === "/v1/traces" ? traces(bytes) : path === "/v1/metrics" ? metrics(bytes) : path === "/v1/logs" ? logs(bytes) : decodeMessage(bytes)
