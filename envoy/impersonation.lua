-- kube-oidc-authz: adds the repeated impersonation headers that Envoy's
-- gRPC ext_authz cannot add itself, and removes every identity header a
-- client wrote.
--
-- The authz service answers an allowed request with header mutations for the
-- single-valued headers (Authorization, Impersonate-User, Impersonate-Uid)
-- and puts the whole identity into the ext_authz dynamic metadata. Envoy
-- 1.40 keeps only the last value of a repeated header mutation, so this
-- filter, placed right after ext_authz, writes one Impersonate-Group line
-- per group and one Impersonate-Extra-<key> line per extra value. The
-- apiserver does not split comma-joined values: each must be its own line.
--
-- The metadata keys it reads (mode, uid, groups, impersonate_extra) are the
-- identity contract of the service's src/metadata.rs; a test holds this file
-- to it.
--
-- Defence in depth, on every request, whatever the metadata says: the
-- service refuses a request carrying impersonate-* headers, but only if
-- Envoy shows it them (ext_authz allowed_headers). So this filter removes
-- every impersonate-* line the service did not write (it keeps
-- Impersonate-User, and Impersonate-Uid when the identity has a uid: the
-- service set those with overwrite), every X-Remote-* line (request-header
-- authentication) and the websocket bearer subprotocol
-- (base64url.bearer.authorization.k8s.io.<token> in Sec-WebSocket-Protocol),
-- which would otherwise reach the apiserver beside the proxy's own token.

local NAMESPACE = "envoy.filters.http.ext_authz"
local IMPERSONATE_PREFIX = "impersonate-"
local EXTRA_PREFIX = "impersonate-extra-"
local REMOTE_PREFIX = "x-remote-"
local WEBSOCKET_PROTOCOL = "sec-websocket-protocol"
local BEARER_PROTOCOL_PREFIX = "base64url.bearer.authorization.k8s.io."

local BYTE_I = string.byte("i")
local BYTE_X = string.byte("x")
local BYTE_S = string.byte("s")

local function starts_with(s, prefix)
  return string.sub(s, 1, #prefix) == prefix
end

-- The websocket subprotocols offered in `lines` without the bearer token
-- one, or nil when none was a bearer token.
local function without_bearer_protocol(lines)
  local kept = {}
  local dropped = false
  for _, line in ipairs(lines) do
    for offered in string.gmatch(line, "[^,]+") do
      offered = string.match(offered, "^%s*(.-)%s*$")
      if starts_with(offered, BEARER_PROTOCOL_PREFIX) then
        dropped = true
      elseif offered ~= "" then
        kept[#kept + 1] = offered
      end
    end
  end
  if dropped then
    return kept
  end
  return nil
end

-- One walk over the request headers (names are lower case in Envoy); the
-- removals come after it, since the map must not change while it is
-- walked. `keep` names the impersonate-* headers the service wrote.
local function strip_client_identity(headers, keep)
  local remove = {}
  local protocols = nil
  for name, value in pairs(headers) do
    local first = string.byte(name, 1)
    if first == BYTE_I then
      if starts_with(name, IMPERSONATE_PREFIX) and not keep[name] then
        remove[#remove + 1] = name
      end
    elseif first == BYTE_X then
      if starts_with(name, REMOTE_PREFIX) then
        remove[#remove + 1] = name
      end
    elseif first == BYTE_S and name == WEBSOCKET_PROTOCOL then
      protocols = protocols or {}
      protocols[#protocols + 1] = value
    end
  end
  for _, name in ipairs(remove) do
    headers:remove(name)
  end
  if protocols ~= nil then
    local kept = without_bearer_protocol(protocols)
    if kept ~= nil then
      headers:remove(WEBSOCKET_PROTOCOL)
      if #kept > 0 then
        headers:add(WEBSOCKET_PROTOCOL, table.concat(kept, ", "))
      end
    end
  end
end

function envoy_on_request(request_handle)
  local metadata = request_handle:streamInfo():dynamicMetadata():get(NAMESPACE)
  local impersonating = metadata ~= nil and metadata["mode"] == "impersonate"

  local headers = request_handle:headers()
  local keep = {}
  if impersonating then
    keep["impersonate-user"] = true
    if type(metadata["uid"]) == "string" then
      keep["impersonate-uid"] = true
    end
  end
  -- Also clears any impersonate-group and impersonate-extra-* line, so
  -- only the ones written below reach the apiserver.
  strip_client_identity(headers, keep)
  if not impersonating then
    return
  end

  local groups = metadata["groups"]
  if type(groups) == "table" then
    for _, group in ipairs(groups) do
      if type(group) == "string" then
        headers:add("impersonate-group", group)
      end
    end
  end

  local extra = metadata["impersonate_extra"]
  if type(extra) == "table" then
    -- Sorted so that the upstream sees the lines in a stable order.
    local names = {}
    for name, _ in pairs(extra) do
      if type(name) == "string" and starts_with(name, EXTRA_PREFIX) then
        names[#names + 1] = name
      end
    end
    table.sort(names)
    for _, name in ipairs(names) do
      local values = extra[name]
      if type(values) == "table" then
        for _, value in ipairs(values) do
          if type(value) == "string" then
            headers:add(name, value)
          end
        end
      end
    end
  end
end
