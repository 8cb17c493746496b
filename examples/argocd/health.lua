-- Argo CD health check for smolserve.dev/SmolServe, built on its status conditions.
--   no status yet, or status older than the spec (generation ≠ observedGeneration) → Progressing
--   Degraded=True                                                                    → Degraded
--   Progressing=True (a template Job or a rollout is under way)                      → Progressing
--   Available=True (enough vLLM pods serve a verified template)                      → Healthy
--   anything else                                                                    → Progressing
local hs = {}

local function condition(conditions, kind)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function describe(c, fallback)
  if c == nil then
    return fallback
  end
  if c.message ~= nil and c.message ~= "" then
    if c.reason ~= nil and c.reason ~= "" then
      return c.reason .. ": " .. c.message
    end
    return c.message
  end
  if c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the smolserve operator"
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and observed ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to act on generation " .. tostring(generation)
  return hs
end

local conditions = obj.status.conditions
local degraded = condition(conditions, "Degraded")
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(degraded, "Degraded")
  return hs
end

local progressing = condition(conditions, "Progressing")
if progressing ~= nil and progressing.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(progressing, "Rolling out")
  return hs
end

local available = condition(conditions, "Available")
if available ~= nil and available.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(available, "Available")
  return hs
end

hs.status = "Progressing"
hs.message = describe(available, "Waiting for the SmolServe to become available")
return hs
