-- Argo CD health check for modelrelease.io/ModelRelease.
-- Argo CD runs it with only the base, table and package libraries: no string, math or os functions here.
local hs = {}

local function findCondition(conditions, conditionType)
  if conditions == nil then
    return nil
  end
  for _, condition in ipairs(conditions) do
    if condition.type == conditionType then
      return condition
    end
  end
  return nil
end

local function describe(condition, fallback)
  if condition == nil or condition.message == nil or condition.message == "" then
    return fallback
  end
  if condition.reason ~= nil and condition.reason ~= "" then
    return condition.reason .. ": " .. condition.message
  end
  return condition.message
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe the release"
  return hs
end

-- Until the operator has seen the latest spec, any other status describes an older one.
local generation = obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local conditions = status.conditions
local degraded = findCondition(conditions, "Degraded")
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(degraded, "The release is degraded")
  return hs
end

-- Verification refused the requested version: the previous version keeps serving, but not what Git asks for.
if status.phase == "Blocked" then
  hs.status = "Degraded"
  hs.message = describe(findCondition(conditions, "Verified"), "Verification blocks the requested version")
  return hs
end

if status.phase == "Failed" then
  hs.status = "Degraded"
  for _, conditionType in ipairs({"Resolved", "Verified", "Ready"}) do
    local condition = findCondition(conditions, conditionType)
    if condition ~= nil and condition.status == "False" then
      hs.message = describe(condition, "The release failed")
      return hs
    end
  end
  hs.message = "The release failed"
  return hs
end

local progressing = findCondition(conditions, "Progressing")
if progressing ~= nil and progressing.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(progressing, "Rolling out")
  return hs
end

local ready = findCondition(conditions, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  if status.current ~= nil and status.current.modelUri ~= nil then
    hs.message = "Serving " .. status.current.modelUri
  else
    hs.message = describe(ready, "Ready")
  end
  return hs
end

hs.status = "Progressing"
hs.message = describe(ready, "Waiting for the release to become ready")
return hs
