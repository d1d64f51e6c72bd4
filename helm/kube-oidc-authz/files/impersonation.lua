-- Adds one impersonate-group line per group and one impersonate-extra-* line
-- per extra value from the ext_authz dynamic metadata (Envoy's gRPC ext_authz
-- cannot append repeated upstream headers). Does nothing without metadata.
local NS = "envoy.filters.http.ext_authz"

function envoy_on_request(handle)
  local md = handle:streamInfo():dynamicMetadata():get(NS)
  if md == nil or md["mode"] ~= "impersonate" then
    return
  end
  local headers = handle:headers()
  local stale = {}
  for name, _ in pairs(headers) do
    local lower = string.lower(name)
    if lower == "impersonate-group" or string.sub(lower, 1, 18) == "impersonate-extra-" then
      stale[#stale + 1] = lower
    end
  end
  for _, name in ipairs(stale) do
    headers:remove(name)
  end
  for _, group in ipairs(md["groups"] or {}) do
    headers:add("impersonate-group", group)
  end
  for name, values in pairs(md["impersonate_extra"] or {}) do
    for _, value in ipairs(values) do
      headers:add(name, value)
    end
  end
end
